"""Messaging across real processes: users on different gateways talk, and nothing breaks.

Two shapes: embedded (`serve --target all`) and distributed (auth, presence, two chat and
two gateway processes on PostgreSQL, Redis and RabbitMQ), with users connected to
different gateways so every push crosses pods through the broker.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from minitg.gateway.v1 import frames_pb2

from tests.e2e.cluster import Cluster, distributed_cluster, embedded_cluster
from tgclient import Account, MinitgClient, RestClient

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["embedded", "distributed"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    factory = embedded_cluster if request.param == "embedded" else distributed_cluster
    async with factory(tmp_path) as running:
        yield running


async def _accounts(cluster: Cluster, *names: str) -> list[Account]:
    async with RestClient(cluster.gateways[0]) as rest:
        return [
            await rest.register(f"{n}-{secrets.token_hex(3)}@example.org", "password123", n)
            for n in names
        ]


async def _direct_pair(cluster: Cluster) -> tuple[Account, Account, dict[str, Any]]:
    """Ann and Bob, registered through the first gateway, and their direct chat."""
    ann, bob = await _accounts(cluster, "ann", "bob")
    async with RestClient(cluster.gateways[0]) as rest:
        chat = await rest.direct_chat(ann.access_token, bob.user_id)
    return ann, bob, chat


async def _updates(client: MinitgClient, count: int, timeout: float = 15) -> list[object]:
    return [await client.next_update(timeout) for _ in range(count)]


async def _event(client: MinitgClient, kind: str, timeout: float = 15) -> object:
    while True:
        frame = await client.next_event(timeout)
        if frame.WhichOneof("payload") == kind:
            return getattr(frame, kind)


async def test_messages_cross_gateways_once_in_order(cluster: Cluster) -> None:
    """Direct and group messages reach every recipient device once, in seq order."""
    ann, bob, cid = await _accounts(cluster, "ann", "bob", "cid")
    async with RestClient(cluster.gateways[0]) as rest:
        direct = await rest.direct_chat(ann.access_token, bob.user_id)
        ann_tablet = await rest.login(ann.email, "password123", "tablet")
        group = await rest.group_chat(ann.access_token, "trio", [bob.user_id, cid.user_id])
    a = MinitgClient(cluster.ws(0), ann.access_token)
    a2 = MinitgClient(cluster.ws(1), ann_tablet.access_token)
    b = MinitgClient(cluster.ws(1), bob.access_token)
    c = MinitgClient(cluster.ws(0), cid.access_token)
    for client in (a, a2, b, c):
        await client.connect()
    try:
        await _drain(b, c, a2)  # membership updates from the chats' creation
        acks = [await a.send_text(direct["id"], f"d{i}") for i in range(20)]
        assert list(range(1, 21)) == [ack.seq for ack in acks]
        for device in (b, a2):  # the recipient and the sender's other device
            got = [u.new_message.message for u in await _updates(device, 20)]
            assert [f"d{i}" for i in range(20)] == [m.body.text for m in got]
            assert list(range(1, 21)) == [m.seq for m in got]
        group_acks = await asyncio.gather(*(a.send_text(group["id"], f"g{i}") for i in range(10)))
        assert list(range(1, 11)) == sorted(ack.seq for ack in group_acks)
        for device in (b, c, a2):
            got = [u.new_message.message for u in await _updates(device, 10)]
            assert list(range(1, 11)) == [m.seq for m in got]
        await asyncio.sleep(0.5)
        assert a.updates.empty(), "the sending device gets Results, not its own updates"
        assert b.updates.empty() and c.updates.empty(), "no duplicates"
    finally:
        for client in (a, a2, b, c):
            await client.close()


async def _drain(*clients: MinitgClient) -> None:
    await asyncio.sleep(1.0)
    for client in clients:
        while not client.updates.empty():
            client.updates.get_nowait()


async def test_receipts_cross_gateways(cluster: Cluster) -> None:
    """Delivered and read receipts from a device on one gateway reach the sender on another."""
    ann, bob, chat = await _direct_pair(cluster)
    async with (
        MinitgClient(cluster.ws(0), ann.access_token) as a,
        MinitgClient(cluster.ws(1), bob.access_token) as b,
    ):
        await _drain(a, b)
        ack = await a.send_text(chat["id"], "did you get this?")
        await b.next_update()
        delivered = await _event(a, "messages_delivered")
        assert (chat["id"], ack.seq, bob.user_id) == (
            delivered.chat_id,
            delivered.max_seq,
            delivered.by_user_id,  # type: ignore[attr-defined]
        )
        read = await b.read_history(chat["id"], ack.seq)
        assert 0 == read.unread_count
        outbox = await a.next_update()
        assert "read_outbox" == outbox.WhichOneof("update")
        assert (chat["id"], ack.seq) == (outbox.read_outbox.chat_id, outbox.read_outbox.max_seq)


async def test_typing_and_presence_cross_gateways(cluster: Cluster) -> None:
    """Typing reaches the other member only; presence goes to users who share a chat."""
    ann, bob, chat = await _direct_pair(cluster)
    async with MinitgClient(cluster.ws(0), ann.access_token) as a:
        b = MinitgClient(cluster.ws(1), bob.access_token)
        await b.connect()
        online = await _event(a, "presence_changed")
        assert (bob.user_id, True) == (online.presence.user_id, online.presence.online)  # type: ignore[attr-defined]
        await b.set_typing(chat["id"])
        typing = await _event(a, "typing_changed")
        assert (chat["id"], bob.user_id) == (typing.chat_id, typing.user_id)  # type: ignore[attr-defined]
        assert 0 < typing.expires_in_ms <= 6000  # type: ignore[attr-defined]
        await b.close()
        offline = await _event(a, "presence_changed")
        presence = offline.presence  # type: ignore[attr-defined]
        assert (bob.user_id, False) == (presence.user_id, presence.online)
        assert presence.last_seen_at_ms > 0
        assert all(e.WhichOneof("payload") != "typing_changed" for e in _pending(b)), (
            "the typist never sees its own typing"
        )


def _pending(client: MinitgClient) -> list[frames_pb2.ServerFrame]:
    frames = []
    while not client.events.empty():
        frames.append(client.events.get_nowait())
    return frames


async def test_retried_send_creates_one_message(cluster: Cluster) -> None:
    """The same client_msg_id sent twice, even through another gateway, is one message."""
    ann, bob = await _accounts(cluster, "ann", "bob")
    async with RestClient(cluster.gateways[0]) as rest:
        chat = await rest.direct_chat(ann.access_token, bob.user_id)
        async with MinitgClient(cluster.ws(1), bob.access_token) as b:
            await _drain(b)
            async with MinitgClient(cluster.ws(0), ann.access_token) as a:
                first = await a.send_text(chat["id"], "once", client_msg_id="retry-1")
            async with MinitgClient(cluster.ws(1), ann.access_token) as a_again:
                second = await a_again.send_text(chat["id"], "once", client_msg_id="retry-1")
            assert (first.message_id, first.seq, first.pts) == (
                second.message_id,
                second.seq,
                second.pts,
            )
            assert "once" == (await b.next_update()).new_message.message.body.text
            await asyncio.sleep(0.5)
            assert b.updates.empty()
        history = await rest.history(ann.access_token, chat["id"])
        assert ["once"] == [m["body"]["text"] for m in history["messages"]]


async def test_bad_input_never_takes_a_gateway_down(cluster: Cluster) -> None:
    """Malformed, oversized, text, unknown and flooding frames affect only their own socket."""
    ann, bob, chat = await _direct_pair(cluster)
    async with MinitgClient(cluster.ws(0), bob.access_token) as b:
        await _drain(b)
        codes = []
        for payload in (b"\xff\x00garbage", b"\x00" * 70_000, "text"):
            codes.append(await _abuse(cluster.ws(0), ann.access_token, payload))
        assert [1007, 1009, 1003] == codes
        assert 4008 == await _flood(cluster.ws(0), ann.access_token)
        async with MinitgClient(cluster.ws(0), ann.access_token) as a:
            unknown = frames_pb2.ClientFrame(request_id=77)  # decodes, but no known payload
            await a._ws.send_bytes(unknown.SerializeToString())  # type: ignore[union-attr]
            await asyncio.sleep(0.3)
            assert not a.closed, "an unknown frame is answered with an Error, not a close"
            await a.send_text(chat["id"], "still here")
        assert "still here" == (await b.next_update()).new_message.message.body.text
    for url in cluster.gateways:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/health") as resp:
            assert 200 == resp.status


async def _flood(ws_base: str, token: str) -> int:
    """Send pings far above the allowed frame rate; return the close code the server used."""
    ping = frames_pb2.ClientFrame(request_id=0, ping=frames_pb2.Ping()).SerializeToString()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{ws_base}/v1/ws", headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        await ws.receive(5)  # Hello
        for _ in range(3000):
            if ws.closed:
                break
            await ws.send_bytes(ping)
        return await _close_code(ws)


async def _abuse(ws_base: str, token: str, payload: bytes | str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{ws_base}/v1/ws", headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        await ws.receive(5)  # Hello
        if isinstance(payload, str):
            await ws.send_str(payload)
        else:
            await ws.send_bytes(payload)
        return await _close_code(ws)


async def test_logout_closes_the_socket_on_another_gateway(cluster: Cluster) -> None:
    """Signing out through one gateway closes that device's socket on the other with 4001."""
    (ann,) = await _accounts(cluster, "ann")
    async with MinitgClient(cluster.ws(1), ann.access_token) as a:
        async with RestClient(cluster.gateways[0]) as rest:
            await rest.call("POST", "/v1/auth/logout", token=ann.access_token)
        for _ in range(50):  # far less than a heartbeat interval (30 s)
            if a.close_code is not None:
                break
            await asyncio.sleep(0.1)
        assert 4001 == a.close_code
        assert a.goodbye is not None and "SESSION_REVOKED" == a.goodbye.reason


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int:
    """Read until the server closes; the code of its close frame."""
    while True:
        msg = await ws.receive(10)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return int(ws.close_code or 1006)
