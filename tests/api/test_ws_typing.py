"""Typing over the WebSocket: shown to the other member, cleared when the typist sends."""

from __future__ import annotations

from pathlib import Path

from tests.api.ws_support import clients, direct_pair
from tests.harness import running_system
from tgclient import MinitgClient


async def _typing(client: MinitgClient) -> object:
    while True:
        frame = await client.next_event(10)
        if frame.WhichOneof("payload") == "typing_changed":
            return frame.typing_changed


async def test_sending_clears_typing(shape: str, tmp_path: Path) -> None:
    """Bob types (Ann sees it, for ~6 s), Bob sends: Ann gets the stop and the message."""
    async with running_system(shape, tmp_path) as system:
        ann, bob, chat = await direct_pair(system)
        async with clients(system, ann, bob) as (a, b):
            await b.set_typing(chat["id"])
            shown = await _typing(a)
            assert (chat["id"], bob.user_id) == (shown.chat_id, shown.user_id)  # type: ignore[attr-defined]
            assert shown.expires_in_ms > 0  # type: ignore[attr-defined]
            await b.send_text(chat["id"], "done typing")
            stopped = await _typing(a)
            assert (bob.user_id, 0) == (stopped.user_id, stopped.expires_in_ms)  # type: ignore[attr-defined]
            assert "done typing" == (await a.next_update()).new_message.message.body.text
