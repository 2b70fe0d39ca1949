"""ReportConnections (PresenceInternalService) and GetPresence over gRPC, on both shapes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc import aio
from minitg.presence.v1 import presence_internal_service_pb2, presence_pb2, presence_service_pb2

from tests.api.test_presence_rig import (
    CONNECTED,
    DISCONNECTED,
    HEARTBEAT,
    event,
    presence_rig,
    reason_of,
)
from tests.harness import SHAPES

pytestmark = pytest.mark.parametrize("shape", SHAPES)


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_connect_and_disconnect_persist_last_seen(shape: str, tmp_path: Path) -> None:
    """A connection makes its user online; its close makes them offline with last-seen."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, never = [await rig.system.register(n) for n in ("alice", "bob", "never")]
        await rig.report("pod-a", event(alice, CONNECTED, at_ms=now_ms() - 100))
        assert [(True, 0), (False, 0)] == await rig.presence_of(bob, alice, never)
        closed_at = now_ms() - 5
        await rig.report("pod-a", event(alice, DISCONNECTED, at_ms=closed_at))
        assert [(False, closed_at)] == await rig.presence_of(bob, alice)
        row = await rig.database.fetchrow(
            "SELECT last_seen_at_ms FROM last_seen WHERE user_id = $1", alice.id
        )
        assert row is not None and closed_at == row["last_seen_at_ms"]


async def test_second_session_keeps_user_online(shape: str, tmp_path: Path) -> None:
    """A user stays online until the last of their connections closes."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("alice")
        await rig.report("pod-a", event(alice, CONNECTED), event(alice, CONNECTED, session="s2"))
        await rig.report("pod-b", event(alice, CONNECTED))
        await rig.report(
            "pod-a", event(alice, DISCONNECTED), event(alice, DISCONNECTED, session="s2")
        )
        assert [(True, 0)] == await rig.presence_of(alice, alice)
        await rig.report("pod-b", event(alice, DISCONNECTED))
        assert [False] == [online for online, _ in await rig.presence_of(alice, alice)]


async def test_heartbeats_keep_online_and_silence_expires(shape: str, tmp_path: Path) -> None:
    """Heartbeats refresh the TTL (1 s here); without them the user goes offline by itself."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("alice")
        await rig.report("pod-a", event(alice, CONNECTED))
        await asyncio.sleep(0.6)
        last_beat = now_ms()
        await rig.report("pod-a", event(alice, HEARTBEAT, at_ms=last_beat))
        await asyncio.sleep(0.6)
        assert [(True, 0)] == await rig.presence_of(alice, alice)
        await asyncio.sleep(0.8)
        assert [(False, last_beat)] == await rig.presence_of(alice, alice)
        row = await rig.database.fetchrow(
            "SELECT last_seen_at_ms FROM last_seen WHERE user_id = $1", alice.id
        )
        assert row is not None and last_beat == row["last_seen_at_ms"]


async def test_presence_pushed_only_to_online_peers(shape: str, tmp_path: Path) -> None:
    """Online and offline are pushed, once debounced, to connected chat peers only."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol, dave = [await rig.system.register(n) for n in ("a", "b", "c", "d")]
        rig.chats.add_chat([alice, bob, dave])  # dave is a peer but has no connection
        pod = await rig.pod()
        await pod.hold(bob, carol)  # carol is connected but shares no chat
        await rig.report("pod-a", event(alice, CONNECTED, at_ms=now_ms() - 100))
        item = await pod.next_item()
        assert (alice.id, True, 0) == (
            item.presence_changed.presence.user_id,
            item.presence_changed.presence.online,
            item.presence_changed.presence.last_seen_at_ms,
        )
        assert [bob.id] == [r.user_id for r in item.recipients]
        closed_at = now_ms()
        await rig.report("pod-a", event(alice, DISCONNECTED, at_ms=closed_at))
        item = await pod.next_item()
        assert (False, closed_at) == (
            item.presence_changed.presence.online,
            item.presence_changed.presence.last_seen_at_ms,
        )
        assert [] == await pod.quiet(0.5)


async def test_a_late_sweep_heartbeat_does_not_hide_the_offline_notice(
    shape: str, tmp_path: Path
) -> None:
    """A HEARTBEAT for a connection after its DISCONNECTED (a gateway sweep that took the
    socket before its client closed it) does not keep the user online: the peer gets the
    offline notice when the debounce window ends, not when the TTL runs out."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob = [await rig.system.register(n) for n in ("a", "b")]
        rig.chats.add_chat([alice, bob])
        pod = await rig.pod()
        await pod.hold(bob)
        await rig.report("pod-a", event(alice, CONNECTED, at_ms=now_ms() - 100))
        assert True is (await pod.next_item()).presence_changed.presence.online
        closed_at = now_ms() - 5
        await rig.report("pod-a", event(alice, DISCONNECTED, at_ms=closed_at))
        await rig.report("pod-a", event(alice, HEARTBEAT, at_ms=now_ms()))
        item = await pod.next_item()
        assert (False, closed_at) == (
            item.presence_changed.presence.online,
            item.presence_changed.presence.last_seen_at_ms,
        )
        assert [(False, closed_at)] == await rig.presence_of(bob, alice)


async def test_users_coming_online_together_cost_one_peer_lookup(
    shape: str, tmp_path: Path
) -> None:
    """Users whose state changes in one debounce window have their peers looked up in one
    BatchListPeers call, and each change still reaches exactly that user's online peers."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol, dan, erin = [await rig.system.register(n) for n in "abcde"]
        rig.chats.add_chat([alice, bob, carol])
        rig.chats.add_chat([dan, erin], direct=True)
        pod = await rig.pod()
        await pod.hold(alice, bob, carol, dan, erin)
        await rig.report("pod-a", *(event(u, CONNECTED) for u in (alice, bob, dan)))
        items = [await pod.next_item() for _ in range(3)]
        assert {
            (alice.id, True, tuple(sorted([bob.id, carol.id]))),
            (bob.id, True, tuple(sorted([alice.id, carol.id]))),
            (dan.id, True, (erin.id,)),
        } == {
            (
                i.presence_changed.presence.user_id,
                i.presence_changed.presence.online,
                tuple(sorted(r.user_id for r in i.recipients)),
            )
            for i in items
        }
        assert [[alice.id, bob.id, dan.id]] == rig.chats.peer_lookups
        assert [] == await pod.quiet(0.5)


async def test_peer_lookups_of_a_connect_burst_take_1000_users_a_call(
    shape: str, tmp_path: Path
) -> None:
    """2,500 users coming online together cost three BatchListPeers calls (the chat
    service's limit is 1,000 ids a call), each user asked about once."""
    async with presence_rig(shape, tmp_path, MINITG_REGISTRY_TTL_SECONDS="30") as rig:
        users = range(1_000_000, 1_002_500)
        await rig.report(
            "pod-big",
            *(
                presence_pb2.ConnectionEvent(user_id=u, session_id=f"s{u}", kind=CONNECTED)
                for u in users
            ),
        )
        for _ in range(50):
            if sum(map(len, rig.chats.peer_lookups)) >= len(users):
                break
            await asyncio.sleep(0.1)
        assert [1000, 1000, 500] == [len(ids) for ids in rig.chats.peer_lookups]
        assert list(users) == [u for ids in rig.chats.peer_lookups for u in ids]


async def test_flapping_within_debounce_publishes_nothing(shape: str, tmp_path: Path) -> None:
    """A reconnect, or a short-lived connection, within the debounce window is not pushed."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol = [await rig.system.register(n) for n in ("a", "b", "c")]
        rig.chats.add_chat([alice, bob, carol])
        pod = await rig.pod()
        await pod.hold(bob)
        await rig.report("pod-a", event(alice, CONNECTED))
        assert alice.id == (await pod.next_item()).presence_changed.presence.user_id
        await rig.report("pod-a", event(alice, DISCONNECTED))
        await rig.report("pod-b", event(alice, CONNECTED))
        await rig.report("pod-a", event(carol, CONNECTED), event(carol, DISCONNECTED))
        assert [] == await pod.quiet(0.8)


async def test_ten_thousand_events_in_one_call(shape: str, tmp_path: Path) -> None:
    """A pod can report 10,000 connections, then their closes, in one call each."""
    async with presence_rig(shape, tmp_path, MINITG_REGISTRY_TTL_SECONDS="30") as rig:
        alice = await rig.system.register("alice")
        users = range(1_000_000, 1_010_000)
        opened = [
            presence_pb2.ConnectionEvent(user_id=u, session_id=f"s{u}", kind=CONNECTED)
            for u in users
        ]
        await rig.report("pod-big", *opened)
        reply = await rig.presence.GetPresence(
            presence_service_pb2.GetPresenceRequest(user_ids=[1_000_000, 1_009_999]),
            metadata=alice.metadata(),
        )
        assert [True, True] == [p.online for p in reply.presences]
        closed = [
            presence_pb2.ConnectionEvent(user_id=u, session_id=f"s{u}", kind=DISCONNECTED)
            for u in users
        ]
        await rig.report("pod-big", *closed)
        assert 10_000 == await rig.database.fetchval("SELECT COUNT(*) FROM last_seen")


async def test_report_connections_refuses_user_tokens(shape: str, tmp_path: Path) -> None:
    """ReportConnections is for gateway pods: a user's token gets PERMISSION_DENIED."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("alice")
        request = presence_internal_service_pb2.ReportConnectionsRequest(
            pod_id="pod-a", events=[event(alice, CONNECTED)]
        )
        with pytest.raises(aio.AioRpcError) as denied:
            await rig.presence_internal.ReportConnections(request, metadata=alice.metadata())
        assert (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED") == reason_of(denied.value)[
            :2
        ]
        with pytest.raises(aio.AioRpcError) as missing:
            await rig.presence_internal.ReportConnections(request)
        assert grpc.StatusCode.UNAUTHENTICATED == missing.value.code()
        assert [(False, 0)] == await rig.presence_of(alice, alice)


async def test_report_connections_rejects_bad_input(shape: str, tmp_path: Path) -> None:
    """An empty pod_id, over 10,000 events or an event without a user is INVALID_FIELD."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("alice")
        ok = event(alice, CONNECTED)
        cases = {
            "pod_id": presence_internal_service_pb2.ReportConnectionsRequest(
                pod_id="", events=[ok]
            ),
            "events": presence_internal_service_pb2.ReportConnectionsRequest(
                pod_id="pod-a", events=[ok] * 10_001
            ),
            "events[1].user_id": presence_internal_service_pb2.ReportConnectionsRequest(
                pod_id="pod-a", events=[ok, presence_pb2.ConnectionEvent(session_id="s")]
            ),
        }
        for field_name, request in cases.items():
            with pytest.raises(aio.AioRpcError) as bad:
                await rig.presence_internal.ReportConnections(request, metadata=rig.internal)
            assert (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", {"field": field_name}) == (
                reason_of(bad.value)
            )


async def test_get_presence_limits_and_order(shape: str, tmp_path: Path) -> None:
    """Duplicates are answered once in request order; more than 100 ids is INVALID_FIELD."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("alice")
        reply = await rig.presence.GetPresence(
            presence_service_pb2.GetPresenceRequest(user_ids=[7, alice.id, 7, 3]),
            metadata=alice.metadata(),
        )
        assert [7, alice.id, 3] == [p.user_id for p in reply.presences]
        with pytest.raises(aio.AioRpcError) as bad:
            await rig.presence.GetPresence(
                presence_service_pb2.GetPresenceRequest(user_ids=list(range(1, 102))),
                metadata=alice.metadata(),
            )
        assert ("INVALID_FIELD", {"field": "user_ids"}) == reason_of(bad.value)[1:]
        with pytest.raises(aio.AioRpcError) as anonymous:
            await rig.presence.GetPresence(presence_service_pb2.GetPresenceRequest(user_ids=[1]))
        assert grpc.StatusCode.UNAUTHENTICATED == anonymous.value.code()
