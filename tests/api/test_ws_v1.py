"""Client protocol v1 on the wire: Hello names the protocol and features, and every request
kind's own client message reaches its service and comes back as its own result message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from minitg.chat.v1 import chat_pb2
from minitg.gateway.v1 import messages_pb2

from tests.api.ws_support import clients, direct_pair, next_frame, raw_socket
from tests.harness import System, running_system
from tgclient import MinitgClient

FEATURES = {"renew_token", "edit", "delete", "typing", "presence", "receipts"}


@pytest.fixture
async def system(shape: str, tmp_path: Path) -> AsyncIterator[System]:
    async with running_system(shape, tmp_path) as running:
        yield running


@pytest.mark.parametrize("offered", [("minitg.v1",), ()])
async def test_hello_names_protocol_and_features(system: System, offered: tuple[str, ...]) -> None:
    """Hello says minitg.v1 (offered or not) and lists the optional features it speaks."""
    ann, _bob, _chat = await direct_pair(system)
    async with raw_socket(system, ann.access_token, protocols=offered) as ws:
        hello = await next_frame(ws, "hello")
    assert ("minitg.v1", FEATURES) == (hello.protocol, set(hello.features))


async def test_every_request_kind_round_trips_its_own_messages(system: System) -> None:
    """Send, read, history (anchor after_seq 0), edit, delete, state, difference, typing and
    a replied ack each get their own v1 result with the service's values."""
    ann, bob, chat = await direct_pair(system)
    chat_id = chat["id"]
    async with clients(system, ann, bob) as (a, b):
        start = a.pts
        first = await a.send_text(chat_id, "one")
        second = await a.send_text(chat_id, "two")
        assert isinstance(first, messages_pb2.SendMessageResult)
        assert (1, 2) == (first.seq, second.seq)
        page = await a.get_history(chat_id, after_seq=0, page_size=1)
        assert ["one"] == [m.body.text for m in page.messages]
        assert page.next_page_token
        read = await b.read_history(chat_id, second.seq)
        assert (0, 1) == (read.unread_count, read.pts_count)
        edited = await a.edit_message(chat_id, first.message_id, chat_pb2.MessageBody(text="1"))
        assert ("1", 1) == (edited.message.body.text, edited.pts_count)
        deleted = await a.delete_messages(chat_id, [second.message_id], for_everyone=True)
        assert 1 == deleted.pts_count
        state = await a.get_state()
        assert deleted.pts == state.state.pts
        chunks = await a.get_difference(start)
        assert messages_pb2.DIFFERENCE_STATUS_COMPLETE == chunks[-1].status
        kinds = [u.WhichOneof("update") for c in chunks for u in c.updates]
        expected = [
            "new_message",
            "new_message",
            "read_outbox",
            "message_edited",
            "messages_deleted",
        ]
        assert expected == kinds  # read_outbox: Bob read both
        assert isinstance(await a.set_typing(chat_id), messages_pb2.SetTypingResult)
        typing = await _next_event(b, "typing_changed")
        assert (chat_id, ann.user_id) == (typing.chat_id, typing.user_id)
        ack = messages_pb2.AckUpdates(
            max_pts=b.pts, chats=[messages_pb2.ChatReceived(chat_id=chat_id, max_seq=2)]
        )
        assert isinstance(await b.request("ack_updates", ack), messages_pb2.AckUpdatesResult)
        delivered = await _next_event(a, "messages_delivered", max_seq=2)
        assert (chat_id, bob.user_id) == (delivered.chat_id, delivered.by_user_id)


async def _next_event(client: MinitgClient, kind: str, **fields: int) -> Any:
    """The next pushed frame of ``kind`` whose payload has ``fields`` (others skipped)."""
    while True:
        frame = await client.next_event(5)
        payload = getattr(frame, kind)
        if frame.WhichOneof("payload") == kind and all(
            getattr(payload, k) == v for k, v in fields.items()
        ):
            return payload
