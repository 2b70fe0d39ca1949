"""PresenceService SetTyping and AckUpdates over gRPC, on both backend shapes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc import aio
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from minitg.presence.v1 import presence_pb2, presence_service_pb2

from tests import harness
from tests.api.test_presence_rig import CONNECTED, DISCONNECTED, Rig, event, presence_rig, reason_of
from tests.harness import SHAPES

pytestmark = pytest.mark.parametrize("shape", SHAPES)

TYPING = presence_pb2.TYPING_ACTION_TYPING
CANCEL = presence_pb2.TYPING_ACTION_CANCEL


async def set_typing(
    rig: Rig,
    user: harness.TestUser,
    chat_id: int,
    action: presence_pb2.TypingAction.ValueType = TYPING,
) -> None:
    await rig.presence.SetTyping(
        presence_service_pb2.SetTypingRequest(chat_id=chat_id, action=action),
        metadata=user.metadata(),
    )


async def ack(
    rig: Rig,
    user: harness.TestUser,
    max_pts: int,
    chats: dict[int, int] | None = None,
    session: str = "",
) -> None:
    await rig.presence.AckUpdates(
        presence_service_pb2.AckUpdatesRequest(
            session_id=session,
            max_pts=max_pts,
            chats=[
                presence_pb2.ChatDelivery(chat_id=c, max_seq=s) for c, s in (chats or {}).items()
            ],
        ),
        metadata=user.metadata(),
    )


async def stored_watermarks(rig: Rig, *sessions: str) -> dict[str, tuple[int, int]]:
    rows = await rig.database.fetch(
        "SELECT session_id, max_pts, updated_at_ms FROM delivered_watermarks"
    )
    return {
        r["session_id"]: (r["max_pts"], r["updated_at_ms"])
        for r in rows
        if r["session_id"] in sessions
    }


async def test_typing_pushed_to_other_members_not_typist(shape: str, tmp_path: Path) -> None:
    """TYPING reaches the chat's other connected members with the TTL, never the typist."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol, dave = [await rig.system.register(n) for n in ("a", "b", "c", "d")]
        chat_id = rig.chats.add_chat([alice, bob, carol])
        pod = await rig.pod()
        await pod.hold(alice, bob, carol, dave)
        await set_typing(rig, alice, chat_id)
        item = await pod.next_item()
        assert (chat_id, alice.id, 6000) == (
            item.typing_changed.chat_id,
            item.typing_changed.user_id,
            item.typing_changed.expires_in_ms,
        )
        assert [bob.id, carol.id] == sorted(r.user_id for r in item.recipients)


async def test_typing_repeats_coalesced_and_cancel_pushed(shape: str, tmp_path: Path) -> None:
    """A repeat within the window is not re-pushed; CANCEL pushes 0 once."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob = [await rig.system.register(n) for n in ("a", "b")]
        chat_id = rig.chats.add_chat([alice, bob], direct=True)
        pod = await rig.pod()
        await pod.hold(bob)
        await set_typing(rig, alice, chat_id)
        await set_typing(rig, alice, chat_id)
        await set_typing(rig, alice, chat_id, CANCEL)
        await set_typing(rig, alice, chat_id, CANCEL)
        items = [await pod.next_item()] + await pod.quiet(0.3)
        assert [6000, 0] == [i.typing_changed.expires_in_ms for i in items]


async def test_typing_errors(shape: str, tmp_path: Path) -> None:
    """A chat the caller is not in is CHAT_NOT_FOUND; a missing action is INVALID_FIELD."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob = [await rig.system.register(n) for n in ("a", "b")]
        chat_id = rig.chats.add_chat([bob])
        with pytest.raises(aio.AioRpcError) as not_member:
            await set_typing(rig, alice, chat_id)
        assert (grpc.StatusCode.NOT_FOUND, "CHAT_NOT_FOUND") == reason_of(not_member.value)[:2]
        with pytest.raises(aio.AioRpcError) as no_action:
            await set_typing(rig, bob, chat_id, presence_pb2.TYPING_ACTION_UNSPECIFIED)
        assert ("INVALID_FIELD", {"field": "action"}) == reason_of(no_action.value)[1:]


async def test_typing_cancelled_when_typist_disconnects(shape: str, tmp_path: Path) -> None:
    """The close of the typist's last connection pushes a stop to those who saw typing."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob = [await rig.system.register(n) for n in ("a", "b")]
        chat_id = rig.chats.add_chat([alice, bob])
        pod = await rig.pod()
        await pod.hold(bob)
        await rig.report("pod-a", event(alice, CONNECTED))
        await pod.next_item()  # alice online (debounced)
        await set_typing(rig, alice, chat_id)
        assert 6000 == (await pod.next_item()).typing_changed.expires_in_ms
        await rig.report("pod-a", event(alice, DISCONNECTED))
        item = await pod.next_item(timeout=0.2)  # not debounced like presence
        assert (chat_id, alice.id, 0) == (
            item.typing_changed.chat_id,
            item.typing_changed.user_id,
            item.typing_changed.expires_in_ms,
        )


async def test_acks_batched_and_never_backwards(shape: str, tmp_path: Path) -> None:
    """Concurrent acks commit in one flush with the highest pts; a lower ack changes nothing."""
    async with presence_rig(shape, tmp_path) as rig:
        users = [await rig.system.register(f"u{i}") for i in range(4)]
        await asyncio.gather(*(ack(rig, u, pts) for u in users for pts in (5, 9, 7)))
        stored = await stored_watermarks(rig, *(u.session_id for u in users))
        assert {9} == {pts for pts, _ in stored.values()}
        assert 1 == len({at for _, at in stored.values()}), "one flush, one timestamp"
        await ack(rig, users[0], 3, session=users[0].session_id)
        assert 9 == (await stored_watermarks(rig, users[0].session_id))[users[0].session_id][0]


async def test_acks_of_two_devices_kept_apart(shape: str, tmp_path: Path) -> None:
    """Each device (session) has its own watermark."""
    async with presence_rig(shape, tmp_path) as rig:
        alice = await rig.system.register("alice")
        auth = auth_service_pb2_grpc.AuthServiceStub(rig.system.channel("auth"))
        login = await auth.Login(
            auth_service_pb2.LoginRequest(email=alice.email, password=alice.password)
        )
        phone = harness.TestUser(
            alice.id, alice.email, alice.password, login.session_id,
            login.tokens.access_token, login.tokens.refresh_token,
        )  # fmt: skip
        await asyncio.gather(ack(rig, alice, 4), ack(rig, phone, 11))
        stored = await stored_watermarks(rig, alice.session_id, phone.session_id)
        assert (4, 11) == (stored[alice.session_id][0], stored[phone.session_id][0])


async def test_ack_sends_messages_delivered_in_direct_chats(shape: str, tmp_path: Path) -> None:
    """The other member of a direct chat gets MessagesDelivered as seq advances; groups none."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob, carol = [await rig.system.register(n) for n in ("a", "b", "c")]
        direct = rig.chats.add_chat([alice, bob], direct=True)
        group = rig.chats.add_chat([alice, bob, carol])
        pod = await rig.pod()
        await pod.hold(alice, bob, carol)
        await ack(rig, alice, 10, {direct: 5, group: 8})
        item = await pod.next_item()
        assert (direct, 5, alice.id) == (
            item.messages_delivered.chat_id,
            item.messages_delivered.max_seq,
            item.messages_delivered.by_user_id,
        )
        assert [bob.id] == [r.user_id for r in item.recipients]
        await ack(rig, alice, 10, {direct: 3})
        await ack(rig, alice, 10, {direct: 5})
        assert [] == await pod.quiet(0.3)


async def test_ack_errors(shape: str, tmp_path: Path) -> None:
    """Another session's id is PERMISSION_DENIED; more than 100 chats is INVALID_FIELD."""
    async with presence_rig(shape, tmp_path) as rig:
        alice, bob = [await rig.system.register(n) for n in ("a", "b")]
        with pytest.raises(aio.AioRpcError) as other:
            await ack(rig, alice, 1, session=bob.session_id)
        assert (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED") == reason_of(other.value)[
            :2
        ]
        with pytest.raises(aio.AioRpcError) as too_many:
            await ack(rig, alice, 1, {c: 1 for c in range(1, 102)})
        assert ("INVALID_FIELD", {"field": "chats"}) == reason_of(too_many.value)[1:]
        assert {} == await stored_watermarks(rig, alice.session_id)
