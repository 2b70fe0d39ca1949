"""REST chat changes leave no pts gap on the acting device's socket.

Creating a chat, inviting and leaving log an update for the caller, like a send does. As
for a send, the update is pushed to the caller's other devices and not to the device that
made the change: the REST answer carries its ``pts``/``pts_count`` instead. So the acting
device's socket plus its REST answers cover every pts with no GetDifference, and the
caller's other device sees every pts pushed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from minitg.gateway.v1 import frames_pb2

from tests.api.ws_support import accounts, next_frame, raw_socket
from tests.harness import running_system
from tgclient import RestClient


class UpdateReader:
    """Collects the pts of every update pushed on one socket, in a background task."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.pts: list[int] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            frame = frames_pb2.ServerFrame.FromString(msg.data)
            if frame.WhichOneof("payload") == "update" and frame.update.pts:
                self.pts.append(frame.update.pts)
                self._arrived.set()

    async def wait_for(self, pts: int) -> None:
        async with asyncio.timeout(15):
            while pts not in self.pts:
                self._arrived.clear()
                await self._arrived.wait()

    def stop(self) -> None:
        self._task.cancel()


async def start_pts(ws: aiohttp.ClientWebSocketResponse) -> int:
    hello = await next_frame(ws, "hello")
    return int(hello.state.pts)


def pts_of(answer: dict[str, Any]) -> int:
    """The answer's pts, after checking it stands for exactly one log entry."""
    assert 1 == answer["pts_count"], answer
    return int(answer["pts"])


async def test_rest_chat_changes_leave_no_gap_on_the_acting_socket(
    shape: str, tmp_path: Path
) -> None:
    """Create direct, create group, invite, leave over REST: the acting socket's pushed pts
    and the REST answers' pts together are every pts, none in both; another device of the
    same user gets all of them pushed."""
    async with running_system(shape, tmp_path) as system, RestClient(system.http_url) as rest:
        ann, bob, cat, dan = await accounts(rest, "ann", "bob", "cat", "dan")
        ann_phone = await rest.login(ann.email, "password123", "phone")
        async with (
            raw_socket(system, ann.access_token) as acting_ws,
            raw_socket(system, ann_phone.access_token) as other_ws,
        ):
            first = await start_pts(acting_ws)
            assert first == await start_pts(other_ws)
            acting, other = UpdateReader(acting_ws), UpdateReader(other_ws)
            try:
                answered = []
                token = ann.access_token
                direct = await rest.call(
                    "POST", "/v1/chats", token=token,
                    json={"kind": "CHAT_KIND_DIRECT", "peer_user_id": bob.user_id},
                )  # fmt: skip
                answered.append(pts_of(direct))
                again = await rest.call(
                    "POST", "/v1/chats", token=token,
                    json={"kind": "CHAT_KIND_DIRECT", "peer_user_id": bob.user_id},
                )  # fmt: skip
                assert (direct["chat"]["id"], 0, 0) == (
                    again["chat"]["id"],
                    again["pts"],
                    again["pts_count"],
                )
                group = await rest.call(
                    "POST", "/v1/chats", token=token,
                    json={
                        "kind": "CHAT_KIND_GROUP", "title": "g", "member_user_ids": [bob.user_id]
                    },
                )  # fmt: skip
                answered.append(pts_of(group))
                invited = await rest.call(
                    "POST", f"/v1/chats/{group['chat']['id']}/invite", token=token,
                    json={"user_ids": [cat.user_id]},
                )  # fmt: skip
                answered.append(pts_of(invited))
                # Someone else's change in between is pushed to both of Ann's devices.
                await rest.call(
                    "POST", f"/v1/chats/{group['chat']['id']}/invite", token=bob.access_token,
                    json={"user_ids": [dan.user_id]},
                )  # fmt: skip
                group_id = group["chat"]["id"]
                left = await rest.call("POST", f"/v1/chats/{group_id}/leave", token=token)
                answered.append(pts_of(left))
                # A last change by someone else marks the end of what Ann's devices get.
                await rest.call(
                    "POST", "/v1/chats", token=cat.access_token,
                    json={"kind": "CHAT_KIND_DIRECT", "peer_user_id": ann.user_id},
                )  # fmt: skip
                # Ann's log: her 3 changes, Bob's invite, her leave, Cat's chat.
                final = first + 6
                assert [first + 1, first + 2, first + 3, first + 5] == answered
                await acting.wait_for(final)
                await other.wait_for(final)
            finally:
                acting.stop()
                other.stop()

        # Delivery is at least once: a pts may be pushed twice, which the pts rule ignores.
        everything = list(range(first + 1, final + 1))
        assert everything == sorted(set(acting.pts) | set(answered))
        assert [] == sorted(set(acting.pts) & set(answered)), "own changes are not pushed back"
        assert everything == sorted(set(other.pts))
