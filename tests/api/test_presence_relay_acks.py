"""PresenceInternalService RelayAcks: a gateway pod's acks of many devices in one call."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc import aio
from minitg.presence.v1 import presence_internal_service_pb2, presence_pb2, presence_service_pb2

from svckit.authn import service_metadata
from tests import harness
from tests.api.test_presence_rig import Rig, presence_rig, reason_of
from tests.api.test_presence_typing_acks import stored_watermarks
from tests.harness import SHAPES

pytestmark = pytest.mark.parametrize("shape", SHAPES)
PS = presence_service_pb2
PI = presence_internal_service_pb2


def relayed(
    user: harness.TestUser, max_pts: int, chats: dict[int, int] | None = None, session: str = ""
) -> PI.RelayedAck:
    deliveries = [presence_pb2.ChatDelivery(chat_id=c, max_seq=s) for c, s in (chats or {}).items()]
    return PI.RelayedAck(
        user_id=user.id,
        session_id=session or user.session_id,
        ack=PS.AckUpdatesRequest(max_pts=max_pts, chats=deliveries),
    )


async def relay(rig: Rig, *items: PI.RelayedAck) -> PI.RelayAcksResponse:
    metadata = service_metadata(rig.system.cfg.messaging.internal_token)
    return await rig.presence_internal.RelayAcks(
        PI.RelayAcksRequest(items=items), metadata=metadata
    )


async def test_relayed_acks_store_watermarks_and_send_receipts(shape: str, tmp_path: Path) -> None:
    """Valid items are stored and produce receipts like AckUpdates; a bad one fails alone."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol = [await rig.system.register(n) for n in ("a", "b", "c")]
        direct = rig.chats.add_chat([alice, bob], direct=True)
        pod = await rig.pod()
        await pod.hold(alice, bob, carol)
        reply = await relay(
            rig,
            relayed(alice, 10, {direct: 5}),
            relayed(bob, -1),
            relayed(carol, 4, {direct: 9}),  # not a member: stored, but no receipt
        )
        assert ["", "INVALID_FIELD", ""] == [r.reason for r in reply.results]
        assert {"field": "max_pts"} == dict(reply.results[1].metadata)
        assert 3 == reply.results[1].code  # INVALID_ARGUMENT
        stored = await stored_watermarks(rig, alice.session_id, bob.session_id, carol.session_id)
        assert {alice.session_id: 10, carol.session_id: 4} == {s: p for s, (p, _) in stored.items()}
        item = await pod.next_item()
        assert (direct, 5, alice.id) == (
            item.messages_delivered.chat_id,
            item.messages_delivered.max_seq,
            item.messages_delivered.by_user_id,
        )
        assert [bob.id] == [r.user_id for r in item.recipients]
        assert [] == await pod.quiet(0.3)


async def test_relay_acks_needs_the_service_credential(shape: str, tmp_path: Path) -> None:
    """A user's token is PERMISSION_DENIED; no items or too many is INVALID_FIELD."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("a")
        request = PI.RelayAcksRequest(items=[relayed(alice, 1)])
        with pytest.raises(aio.AioRpcError) as as_user:
            await rig.presence_internal.RelayAcks(request, metadata=alice.metadata())
        assert grpc.StatusCode.PERMISSION_DENIED == reason_of(as_user.value)[0]
        for count in (0, 1001):
            with pytest.raises(aio.AioRpcError) as bad:
                await relay(rig, *[relayed(alice, 1)] * count)
            assert ("INVALID_FIELD", {"field": "items"}) == reason_of(bad.value)[1:]
        assert {} == await stored_watermarks(rig, alice.session_id)


async def test_receipts_of_a_batch_look_their_chats_up_in_one_call(
    shape: str, tmp_path: Path
) -> None:
    """The chats of a whole batch of acks are fetched with one BatchGetChatMembers, then
    served from the cache; a chat is asked about again when an acking user is not among
    its cached members (they may have just joined)."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol, dan = [await rig.system.register(n) for n in ("a", "b", "c", "d")]
        first = rig.chats.add_chat([alice, bob], direct=True)
        second = rig.chats.add_chat([carol, dan], direct=True)
        pod = await rig.pod()
        await pod.hold(alice, bob, carol, dan)
        await relay(rig, relayed(alice, 10, {first: 5}), relayed(carol, 4, {second: 2}))
        receipts = {(i.messages_delivered.chat_id, i.messages_delivered.max_seq)
                    for i in [await pod.next_item(), await pod.next_item()]}  # fmt: skip
        assert {(first, 5), (second, 2)} == receipts
        assert [[first, second]] == rig.chats.batch_lookups
        await relay(rig, relayed(bob, 11, {first: 6}))
        item = await pod.next_item()
        assert (first, 6, bob.id) == (
            item.messages_delivered.chat_id,
            item.messages_delivered.max_seq,
            item.messages_delivered.by_user_id,
        )
        assert [[first, second]] == rig.chats.batch_lookups  # cached
        rig.chats.chats[second] = (rig.chats.chats[second][0], [carol.id, dan.id, alice.id])
        await relay(rig, relayed(alice, 12, {second: 3}))
        item = await pod.next_item()
        assert (second, 3, alice.id) == (
            item.messages_delivered.chat_id,
            item.messages_delivered.max_seq,
            item.messages_delivered.by_user_id,
        )
        assert [[first, second], [second]] == rig.chats.batch_lookups
