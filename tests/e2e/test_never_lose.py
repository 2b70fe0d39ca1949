"""Never lose, never duplicate: catch-up after offline, a killed gateway, a broker restart.

Distributed shape only (PostgreSQL, Redis, RabbitMQ, two gateways, two chat processes):
that is where deliveries cross pods and can be lost, and where the database must be the
truth that catch-up restores.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, distributed_cluster
from tests.e2e.private_broker import PrivateBroker
from tests.e2e.test_messaging import _accounts, _direct_pair, _drain
from tgclient import MinitgClient, RestClient
from tgclient.errors import ConnectionClosed, RequestFailed

pytestmark = pytest.mark.e2e


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with distributed_cluster(tmp_path) as running:
        yield running


def _ids(updates: list[object]) -> list[int]:
    return [u.new_message.message.id for u in updates if u.WhichOneof("update") == "new_message"]  # type: ignore[attr-defined]


async def test_offline_device_catches_up_exactly(cluster: Cluster) -> None:
    """B offline during 100 sends, edits, deletes and reads: catch-up returns exactly those."""
    ann, bob, cid = await _accounts(cluster, "ann", "bob", "cid")
    async with RestClient(cluster.gateways[0]) as rest:
        chats = [await rest.direct_chat(ann.access_token, bob.user_id)]
        for i in range(4):
            chats.append(
                await rest.group_chat(ann.access_token, f"g{i}", [bob.user_id, cid.user_id])
            )
        bob_laptop = await rest.login(bob.email, "password123", "laptop")
    phone = MinitgClient(cluster.ws(1), bob.access_token)
    await phone.connect()
    await phone.catch_up()
    start_pts = phone.pts or 0
    await phone.close()  # B's phone goes offline
    async with (
        MinitgClient(cluster.ws(0), ann.access_token) as a,
        MinitgClient(cluster.ws(1), bob_laptop.access_token) as laptop,
    ):
        acks = [await a.send_text(chats[i % 5]["id"], f"m{i}") for i in range(100)]
        for i, ack in enumerate(acks[:5]):
            await a.request("edit_message", _edit(chats[i % 5]["id"], ack.message_id, "edited"))
        for i, ack in enumerate(acks[95:]):  # the last five, one per chat, deleted for all
            await a.request("delete_messages", _delete(chats[(95 + i) % 5]["id"], ack.message_id))
        for chat in chats:
            await laptop.read_history(chat["id"], 10)
    expected_pts = await _log_since(cluster, bob.access_token, start_pts, limit=0)
    sliced = await _log_since(cluster, bob.access_token, start_pts, limit=30)
    assert expected_pts == sliced, "slices of 30 converge to the same difference"
    phone = MinitgClient(cluster.ws(0), bob.access_token, pts=start_pts)
    await phone.connect()  # reconnect with the old pts: catch-up before anything else
    try:
        got = []
        while not phone.updates.empty():
            got.append(phone.updates.get_nowait())
        pts = [u.pts for u in got]
        assert list(range(start_pts + 1, start_pts + len(got) + 1)) == pts, "no gap, in order"
        assert sorted(set(_ids(got))) == sorted(ack.message_id for ack in acks)
        assert len(_ids(got)) == len(set(_ids(got))) == 100, "no duplicate"
        kinds = [u.WhichOneof("update") for u in got]
        assert (100, 5, 5, 5) == (
            kinds.count("new_message"),
            kinds.count("message_edited"),
            kinds.count("messages_deleted"),
            kinds.count("read_inbox"),
        )
        assert [(u.pts, u.WhichOneof("update")) for u in got] == expected_pts
    finally:
        await phone.close()


def _delete(chat_id: int, message_id: int) -> object:
    from minitg.gateway.v1 import messages_pb2

    return messages_pb2.DeleteMessages(chat_id=chat_id, message_ids=[message_id], for_everyone=True)


def _edit(chat_id: int, message_id: int, text: str) -> object:
    from minitg.chat.v1 import chat_pb2
    from minitg.gateway.v1 import messages_pb2

    return messages_pb2.EditMessage(
        chat_id=chat_id, message_id=message_id, body=chat_pb2.MessageBody(text=text)
    )


async def _log_since(cluster: Cluster, token: str, pts: int, limit: int) -> list[tuple[int, str]]:
    """(pts, kind) of every update after ``pts``, by repeated GetDifference calls."""
    found: list[tuple[int, str]] = []
    async with MinitgClient(cluster.ws(0), token) as probe:
        while True:
            chunks = await probe.get_difference(pts, limit)
            for chunk in chunks:
                found.extend((u.pts, u.WhichOneof("update")) for u in chunk.updates)
            final = chunks[-1]
            if final.status == 2:  # SLICE: continue from the intermediate position
                pts = final.intermediate_pts
                continue
            assert 1 == final.status, "COMPLETE, never silently truncated"
            return found


async def _send_stream(
    client: MinitgClient, chat_id: int, count: int, acked: dict[int, int], pace: float
) -> None:
    """Send ``count`` messages, retrying each with its client_msg_id through failures."""
    for i in range(count):
        for attempt in range(30):
            try:
                ack = await client.send_text(chat_id, f"n{i}", client_msg_id=f"stream-{i}")
                acked[ack.message_id] = ack.seq
                break
            except (ConnectionClosed, RequestFailed, ConnectionError, TimeoutError):
                await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        await asyncio.sleep(pace)


async def _collect_until(client: MinitgClient, want: set[int], timeout: float) -> list[object]:
    got: list[object] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not want <= set(_ids(got)) and asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(TimeoutError):
            got.append(await client.next_update(0.5))
        if client.closed and not client.auto_reconnect:
            break
    return got


def _assert_exactly_once_in_order(got: list[object], acked: dict[int, int]) -> None:
    ids = _ids(got)
    assert len(ids) == len(set(ids)), "no message delivered twice"
    assert set(acked) == set(ids), "every acknowledged message arrived"
    seqs = [acked[i] for i in ids]
    assert sorted(seqs) == seqs, "in seq order"


async def test_gateway_killed_while_messages_flow(cluster: Cluster) -> None:
    """SIGKILL the gateway both users are on: they move to the other; nothing lost or doubled."""
    ann, bob, chat = await _direct_pair(cluster)
    urls = [cluster.gateways[0], cluster.gateways[1]]
    a = MinitgClient(urls, ann.access_token, auto_reconnect=True)
    b = MinitgClient(urls, bob.access_token, auto_reconnect=True)
    await a.connect()
    await b.connect()
    await _drain(b)
    acked: dict[int, int] = {}
    try:
        sender = asyncio.create_task(_send_stream(a, chat["id"], 120, acked, pace=0.02))
        await asyncio.sleep(1.0)
        victim = cluster.proc("gateway0")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        cluster.procs.remove(victim)
        await asyncio.wait_for(sender, 120)
        got = await _collect_until(b, set(acked), timeout=30)
        assert b.reconnects >= 1 and a.reconnects >= 1
        _assert_exactly_once_in_order(got, acked)
        assert 120 == len(acked)
    finally:
        await a.close()
        await b.close()


async def test_broker_restart_while_messages_flow(tmp_path: Path) -> None:
    """RabbitMQ restarts mid-stream: every acknowledged message still arrives exactly once."""
    broker = PrivateBroker()
    broker.start()
    try:
        async with distributed_cluster(tmp_path, broker_url=broker.url) as cluster:
            ann, bob, chat = await _direct_pair(cluster)
            async with (
                MinitgClient(cluster.ws(0), ann.access_token) as a,
                MinitgClient(cluster.ws(1), bob.access_token) as b,
            ):
                await _drain(b)
                acked: dict[int, int] = {}
                sender = asyncio.create_task(_send_stream(a, chat["id"], 100, acked, pace=0.03))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(broker.restart)
                await asyncio.wait_for(sender, 120)
                got = await _collect_until(b, set(acked), timeout=45)
                if not set(acked) <= set(_ids(got)):
                    await b.catch_up()  # the database is the truth: a gap is fetched
                    while not b.updates.empty():
                        got.append(b.updates.get_nowait())
                _assert_exactly_once_in_order(got, acked)
    finally:
        await asyncio.to_thread(broker.remove)


async def test_history_pages_are_stable_under_concurrent_sends(cluster: Cluster) -> None:
    """250 messages paged back by 100 through the gateway: 100, 100, 50, then no token."""
    ann, bob = await _accounts(cluster, "ann", "bob")
    async with RestClient(cluster.gateways[1]) as rest:
        chat = await rest.direct_chat(ann.access_token, bob.user_id)
        async with MinitgClient(cluster.ws(0), ann.access_token) as a:
            for i in range(250):
                await a.send_text(chat["id"], f"h{i}")
            pages: list[list[int]] = []
            query: dict[str, object] = {"page_size": 100, "before_seq": 251}
            while True:  # backwards from the newest of the 250, while new ones keep arriving
                page = await rest.history(ann.access_token, chat["id"], **query)
                pages.append([m["seq"] for m in page["messages"]])
                await a.send_text(chat["id"], "meanwhile")
                if not page["prev_page_token"]:  # older pages are "prev" in the API
                    break
                query = {"page_size": 100, "page_token": page["prev_page_token"]}
        assert [100, 100, 50] == [len(p) for p in pages]
        assert list(range(1, 251)) == sorted(seq for page in pages for seq in page)
        assert all(page == sorted(page) for page in pages), "each page in ascending seq"
