"""ChatService over real gRPC, on both backend shapes: chats, membership and sends."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from minitg.chat.v1 import (
    chat_internal_service_pb2,
    chat_internal_service_pb2_grpc,
    chat_pb2,
    chat_service_pb2,
    chat_service_pb2_grpc,
    updates_pb2,
)
from minitg.delivery.v1 import delivery_pb2

from svckit.backends import open_bus, open_hot_state
from svckit.errors import details_from_rpc_error
from svckit.ports import Delivery, HotState, MessageBus
from svckit.registry import ConnectionRegistry, registry_namespace
from tests.harness import AMQP_URL, REDIS_URL, SHAPES, System, running_system
from tests.harness import TestUser as User

pytestmark = pytest.mark.asyncio(loop_scope="module")

CS = chat_service_pb2
CI = chat_internal_service_pb2
DIRECT, GROUP = chat_pb2.CHAT_KIND_DIRECT, chat_pb2.CHAT_KIND_GROUP


@dataclass
class Chat:
    """A running system with a ChatService stub (and a ChatInternalService one)."""

    system: System
    stub: chat_service_pb2_grpc.ChatServiceAsyncStub

    @cached_property
    def internal(self) -> chat_internal_service_pb2_grpc.ChatInternalServiceAsyncStub:
        return chat_internal_service_pb2_grpc.ChatInternalServiceStub(self.system.channel("chat"))

    @cached_property
    def service(self) -> tuple[tuple[str, str], ...]:
        """The internal service credential's metadata."""
        return (("authorization", f"Service {self.system.cfg.messaging.internal_token}"),)

    async def send_many(
        self, sender: User, items: list[chat_service_pb2.SendMessageRequest]
    ) -> list[CI.SendMessageResult]:
        """Send ``items`` as ``sender`` in one batch, as a gateway pod relays them."""
        relayed = [
            CI.RelayedSend(user_id=sender.id, session_id=sender.session_id, send=s) for s in items
        ]
        reply = await self.internal.RelaySends(
            CI.RelaySendsRequest(items=relayed), metadata=self.service
        )
        return list(reply.results)

    async def users(self, count: int) -> list[User]:
        return list(await asyncio.gather(*(self.system.register(f"u{i}") for i in range(count))))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def chat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Chat]:
    tmp: Path = tmp_path_factory.mktemp(f"chat-{request.param}")
    env = {"MINITG_SESSION_CHECK_TTL_SECONDS": "0", "MINITG_MAX_GROUP_MEMBERS": "5"}
    async with running_system(request.param, tmp, roles=("auth", "chat"), env=env) as system:
        yield Chat(system, chat_service_pb2_grpc.ChatServiceStub(system.channel("chat")))


async def reason_of(call: object) -> tuple[str, dict[str, str]]:
    """Await a call expected to fail; return its reason and metadata."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    details = details_from_rpc_error(info.value)
    return details.reason, dict(details.metadata)


def text(value: str) -> chat_pb2.MessageBody:
    return chat_pb2.MessageBody(text=value)


async def direct(chat: Chat, a: User, b: User) -> chat_pb2.Chat:
    reply = await chat.stub.CreateChat(
        CS.CreateChatRequest(kind=DIRECT, peer_user_id=b.id), metadata=a.metadata()
    )
    return reply.chat


async def group(chat: Chat, owner: User, *others: User, title: str = "g") -> chat_pb2.Chat:
    reply = await chat.stub.CreateChat(
        CS.CreateChatRequest(kind=GROUP, title=title, member_user_ids=[u.id for u in others]),
        metadata=owner.metadata(),
    )
    return reply.chat


async def send(
    chat: Chat, user: User, chat_id: int, body: str, cmid: str = ""
) -> CS.SendMessageResponse:
    request = CS.SendMessageRequest(
        chat_id=chat_id, client_msg_id=cmid or uuid.uuid4().hex, body=text(body)
    )
    return await chat.stub.SendMessage(request, metadata=user.metadata())


async def test_direct_chat_is_created_once(chat: Chat) -> None:
    """CreateChat for the same pair returns the same chat, created only the first time."""
    a, b = await chat.users(2)
    first = await chat.stub.CreateChat(
        CS.CreateChatRequest(kind=DIRECT, peer_user_id=b.id), metadata=a.metadata()
    )
    second = await chat.stub.CreateChat(
        CS.CreateChatRequest(kind=DIRECT, peer_user_id=a.id), metadata=b.metadata()
    )
    assert (True, False) == (first.created, second.created)
    assert first.chat.id == second.chat.id
    assert sorted([a.id, b.id]) == sorted(m.user_id for m in second.chat.members)


class PodQueue:
    """A fake gateway pod: a queue bound to its pod id, collecting DeliveryBatches."""

    def __init__(self) -> None:
        self.batches: list[delivery_pb2.DeliveryBatch] = []
        self.headers: list[dict[str, str]] = []
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> None:
        self.batches.append(delivery_pb2.DeliveryBatch.FromString(delivery.body))
        self.headers.append(dict(delivery.headers))
        self._changed.set()

    def items(self) -> list[delivery_pb2.DeliveryItem]:
        return [item for batch in self.batches for item in batch.items]

    async def wait_for_item(
        self, kind: str, *, text: str = "", timeout: float = 5.0
    ) -> delivery_pb2.DeliveryItem:
        """The last item of ``kind`` (with a message of this text, when given)."""
        async with asyncio.timeout(timeout):
            while True:
                found = [
                    i
                    for i in self.items()
                    if i.update.WhichOneof("update") == kind
                    and (not text or i.update.new_message.message.body.text == text)
                ]
                if found:
                    return found[-1]
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def fake_pod(system: System, users: list[User]) -> AsyncIterator[PodQueue]:
    """Subscribe a PodQueue as a new pod and register ``users`` as connected to it."""
    pod = f"pod-test-{secrets.token_hex(4)}"
    namespace = registry_namespace(system.cfg.redis_prefix)
    bus: MessageBus
    state: HotState
    if system.shape == "embedded":
        bus, state = system.embedded.bus(), system.embedded.hot_state(namespace)
    else:
        bus = await open_bus(AMQP_URL, queue_expires_ms=60_000)
        state = await open_hot_state(REDIS_URL, namespace)
    queue = PodQueue()
    subscription = await bus.subscribe(pod, pod, queue)
    registry = ConnectionRegistry(state, 60)
    for user in users:
        await registry.add(user.id, pod)
    try:
        yield queue
    finally:
        for user in users:
            await registry.remove(user.id, pod)
        await subscription.cancel()
        await bus.close()
        await state.close()


async def test_direct_chat_needs_another_existing_user(chat: Chat) -> None:
    """A direct chat with oneself is INVALID_FIELD, with an unknown user USER_NOT_FOUND."""
    (a,) = await chat.users(1)
    self_chat = chat.stub.CreateChat(
        CS.CreateChatRequest(kind=DIRECT, peer_user_id=a.id), metadata=a.metadata()
    )
    unknown = chat.stub.CreateChat(
        CS.CreateChatRequest(kind=DIRECT, peer_user_id=10**12), metadata=a.metadata()
    )
    assert ("INVALID_FIELD", {"field": "peer_user_id"}) == await reason_of(self_chat)
    assert ("USER_NOT_FOUND", {"user_id": str(10**12)}) == await reason_of(unknown)


async def test_group_has_owner_members_and_cap(chat: Chat) -> None:
    """The creator owns the group, the others are members; above the cap is CHAT_FULL."""
    users = await chat.users(6)
    created = await group(chat, users[0], users[1], users[2], title="  Team  ")
    assert "Team" == created.title
    assert 3 == created.member_count
    roles = {m.user_id: m.role for m in created.members}
    assert chat_pb2.MEMBER_ROLE_OWNER == roles[users[0].id]
    assert {chat_pb2.MEMBER_ROLE_MEMBER} == {roles[users[1].id], roles[users[2].id]}
    too_big = group(chat, users[0], *users[1:])
    assert ("CHAT_FULL", {}) == await reason_of(too_big)


async def test_group_client_request_id_is_idempotent(chat: Chat) -> None:
    """A retry with the same client_request_id returns the first group; other fields fail."""
    a, b = await chat.users(2)
    rid = uuid.uuid4().hex

    def create(title: str) -> object:
        return chat.stub.CreateChat(
            CS.CreateChatRequest(
                kind=GROUP, title=title, member_user_ids=[b.id], client_request_id=rid
            ),
            metadata=a.metadata(),
        )

    first, again = await create("x"), await create("x")  # type: ignore[misc]
    assert (True, False, first.chat.id) == (first.created, again.created, again.chat.id)
    assert ("CLIENT_REQUEST_ID_REUSED", {}) == await reason_of(create("y"))


async def test_invite_adds_only_new_members(chat: Chat) -> None:
    """Any member may invite; existing members are skipped, so a retry adds nothing."""
    a, b, c, d = await chat.users(4)
    g = await group(chat, a, b)
    invite = CS.InviteMembersRequest(chat_id=g.id, user_ids=[c.id, b.id, c.id])
    reply = await chat.stub.InviteMembers(invite, metadata=b.metadata())
    retry = await chat.stub.InviteMembers(invite, metadata=b.metadata())
    assert ([c.id], 3) == (list(reply.added_user_ids), reply.member_count)
    assert (1, True) == (reply.pts_count, reply.pts > 0)
    assert ([], 3, 0, 0) == (
        list(retry.added_user_ids),
        retry.member_count,
        retry.pts,
        retry.pts_count,
    )
    viewed_by_c = await chat.stub.GetChat(CS.GetChatRequest(chat_id=g.id), metadata=c.metadata())
    assert 3 == viewed_by_c.chat.member_count
    unknown = chat.stub.InviteMembers(
        CS.InviteMembersRequest(chat_id=g.id, user_ids=[d.id, 10**12]), metadata=a.metadata()
    )
    assert ("USER_NOT_FOUND", {"user_id": str(10**12)}) == await reason_of(unknown)


async def test_invite_respects_cap_and_needs_a_group(chat: Chat) -> None:
    """Inviting past the cap is CHAT_FULL (nothing added); a direct chat is GROUP_CHAT_REQUIRED."""
    users = await chat.users(6)
    g = await group(chat, users[0], users[1], users[2])
    too_many = chat.stub.InviteMembers(
        CS.InviteMembersRequest(chat_id=g.id, user_ids=[u.id for u in users[3:]]),
        metadata=users[0].metadata(),
    )
    assert ("CHAT_FULL", {}) == await reason_of(too_many)
    d = await direct(chat, users[0], users[1])
    on_direct = chat.stub.InviteMembers(
        CS.InviteMembersRequest(chat_id=d.id, user_ids=[users[2].id]), metadata=users[0].metadata()
    )
    leave_direct = chat.stub.LeaveChat(
        CS.LeaveChatRequest(chat_id=d.id), metadata=users[0].metadata()
    )
    assert ("GROUP_CHAT_REQUIRED", {}) == await reason_of(on_direct)
    assert ("GROUP_CHAT_REQUIRED", {}) == await reason_of(leave_direct)


async def test_owner_leaving_hands_ownership_on(chat: Chat) -> None:
    """An owner leaving hands ownership to the oldest member; leaving twice is CHAT_NOT_FOUND."""
    a, b, c = await chat.users(3)
    g = await group(chat, a, b)
    await chat.stub.InviteMembers(
        CS.InviteMembersRequest(chat_id=g.id, user_ids=[c.id]), metadata=a.metadata()
    )
    left = await chat.stub.LeaveChat(CS.LeaveChatRequest(chat_id=g.id), metadata=a.metadata())
    assert (1, True) == (left.pts_count, left.pts > 0)
    after = (await chat.stub.GetChat(CS.GetChatRequest(chat_id=g.id), metadata=c.metadata())).chat
    roles = {m.user_id: m.role for m in after.members}
    assert {b.id: chat_pb2.MEMBER_ROLE_OWNER, c.id: chat_pb2.MEMBER_ROLE_MEMBER} == roles
    again = chat.stub.LeaveChat(CS.LeaveChatRequest(chat_id=g.id), metadata=a.metadata())
    assert ("CHAT_NOT_FOUND", {}) == await reason_of(again)


async def test_non_member_gets_chat_not_found_everywhere(chat: Chat) -> None:
    """Every chat RPC answers CHAT_NOT_FOUND to a non-member, as for an unknown chat."""
    a, b, stranger = await chat.users(3)
    g = await group(chat, a, b)
    md = stranger.metadata()
    for chat_id in (g.id, 10**12):
        calls = [
            chat.stub.GetChat(CS.GetChatRequest(chat_id=chat_id), metadata=md),
            chat.stub.InviteMembers(
                CS.InviteMembersRequest(chat_id=chat_id, user_ids=[a.id]), metadata=md
            ),
            chat.stub.LeaveChat(CS.LeaveChatRequest(chat_id=chat_id), metadata=md),
            send(chat, stranger, chat_id, "hi"),
            chat.stub.ReadHistory(CS.ReadHistoryRequest(chat_id=chat_id, max_seq=1), metadata=md),
        ]
        for call in calls:
            assert ("CHAT_NOT_FOUND", {}) == await reason_of(call)


async def test_concurrent_sends_get_gapless_seqs(chat: Chat) -> None:
    """50 concurrent sends from two members get exactly the seqs 1..50."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    replies = await asyncio.gather(
        *(send(chat, a if i % 2 else b, d.id, f"m{i}") for i in range(50))
    )
    assert list(range(1, 51)) == sorted(r.seq for r in replies)
    assert 50 == len({r.message_id for r in replies})
    view = (await chat.stub.GetChat(CS.GetChatRequest(chat_id=d.id), metadata=a.metadata())).chat
    assert (50, 50) == (view.last_seq, view.last_message.seq)


async def test_retry_returns_original_and_reuse_fails(chat: Chat) -> None:
    """A retry returns the first result; a reuse with another body is CLIENT_MSG_ID_REUSED."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    first = await send(chat, a, d.id, "hello", cmid="m-1")
    retry = await send(chat, a, d.id, "hello", cmid="m-1")
    assert first == retry
    reuse = send(chat, a, d.id, "other", cmid="m-1")
    assert ("CLIENT_MSG_ID_REUSED", {}) == await reason_of(reuse)
    view = (await chat.stub.GetChat(CS.GetChatRequest(chat_id=d.id), metadata=b.metadata())).chat
    assert (1, 1) == (view.last_seq, view.unread_count)


async def test_pts_grows_by_one_per_update(chat: Chat) -> None:
    """Each send appends exactly one update to every member's log, the sender's included."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    start_a = (await chat.stub.GetState(CS.GetStateRequest(), metadata=a.metadata())).state.pts
    start_b = (await chat.stub.GetState(CS.GetStateRequest(), metadata=b.metadata())).state.pts
    replies = [await send(chat, a, d.id, f"m{i}") for i in range(3)]
    assert [start_a + 1, start_a + 2, start_a + 3] == [r.pts for r in replies]
    assert {1} == {r.pts_count for r in replies}
    state_b = (await chat.stub.GetState(CS.GetStateRequest(), metadata=b.metadata())).state
    assert (start_b + 3, 1) == (state_b.pts, state_b.unread_chats_count)


async def test_unread_counts_and_watermark_never_backwards(chat: Chat) -> None:
    """Reads move the watermark forward only, clamp to last_seq and recount unread."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    for i in range(3):
        await send(chat, b, d.id, f"m{i}")

    async def read(max_seq: int) -> CS.ReadHistoryResponse:
        request = CS.ReadHistoryRequest(chat_id=d.id, max_seq=max_seq)
        return await chat.stub.ReadHistory(request, metadata=a.metadata())

    async def view(user: User) -> chat_pb2.Chat:
        reply = await chat.stub.GetChat(CS.GetChatRequest(chat_id=d.id), metadata=user.metadata())
        return reply.chat

    assert 3 == (await view(a)).unread_count
    moved = await read(2)
    assert (1, 1, True) == (moved.unread_count, moved.pts_count, moved.pts > 0)
    backwards = await read(1)
    assert (0, 0, 1) == (backwards.pts, backwards.pts_count, backwards.unread_count)
    assert (2, 1) == ((await view(a)).read_inbox_max_seq, (await view(a)).unread_count)
    clamped = await read(99)
    assert 0 == clamped.unread_count
    assert (3, 3) == ((await view(a)).read_inbox_max_seq, (await view(b)).read_outbox_max_seq)


async def test_reads_log_read_inbox_and_read_outbox(chat: Chat) -> None:
    """A read appends ReadInbox to the reader's log and ReadOutbox to the sender's."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    await send(chat, b, d.id, "one")
    sent = await send(chat, b, d.id, "two")
    read = await chat.stub.ReadHistory(
        CS.ReadHistoryRequest(chat_id=d.id, max_seq=2), metadata=a.metadata()
    )
    a_updates = await difference(chat, a, read.pts - 1)
    b_updates = await difference(chat, b, sent.pts)
    assert ["read_inbox"] == [u.WhichOneof("update") for u in a_updates]
    assert (d.id, 2, 0, read.pts) == (
        a_updates[0].read_inbox.chat_id,
        a_updates[0].read_inbox.max_seq,
        a_updates[0].read_inbox.unread_count,
        a_updates[0].pts,
    )
    assert ["read_outbox"] == [u.WhichOneof("update") for u in b_updates]
    assert (2, a.id) == (b_updates[0].read_outbox.max_seq, b_updates[0].read_outbox.reader_user_id)


async def test_concurrent_reads_are_batched_and_coalesced(chat: Chat) -> None:
    """Concurrent reads of one chat all return after one commit with one ReadInbox update."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    for i in range(5):
        await send(chat, b, d.id, f"m{i}")
    before = (await chat.stub.GetState(CS.GetStateRequest(), metadata=a.metadata())).state.pts
    replies = await asyncio.gather(
        *(
            chat.stub.ReadHistory(
                CS.ReadHistoryRequest(chat_id=d.id, max_seq=seq), metadata=a.metadata()
            )
            for seq in (1, 5, 3)
        )
    )
    assert {(before + 1, 0)} == {(r.pts, r.unread_count) for r in replies}


async def difference(chat: Chat, user: User, pts: int, limit: int = 0) -> list[updates_pb2.Update]:
    """Every update of a GetDifference stream from ``pts`` (checking it ends COMPLETE)."""
    chunks = [
        c
        async for c in chat.stub.GetDifference(
            CS.GetDifferenceRequest(pts=pts, limit=limit), metadata=user.metadata()
        )
    ]
    assert CS.DIFFERENCE_STATUS_COMPLETE == chunks[-1].status
    return [u for c in chunks for u in c.updates]


async def test_get_difference_slices_and_too_long(chat: Chat) -> None:
    """GetDifference returns missed updates in pts order, slices at the limit, and says
    TOO_LONG for a pts ahead of the server."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    start = (await chat.stub.GetState(CS.GetStateRequest(), metadata=b.metadata())).state.pts
    for i in range(4):
        await send(chat, a, d.id, f"m{i}")
    updates = await difference(chat, b, start)
    assert [start + i for i in range(1, 5)] == [u.pts for u in updates]
    assert [1, 2, 3, 4] == [u.new_message.unread_count for u in updates]
    assert {""} == {u.new_message.message.client_msg_id for u in updates}
    sliced = [
        c
        async for c in chat.stub.GetDifference(
            CS.GetDifferenceRequest(pts=start, limit=3), metadata=b.metadata()
        )
    ]
    assert (CS.DIFFERENCE_STATUS_SLICE, start + 3) == (
        sliced[-1].status,
        sliced[-1].intermediate_pts,
    )
    ahead = [
        c
        async for c in chat.stub.GetDifference(
            CS.GetDifferenceRequest(pts=start + 100), metadata=b.metadata()
        )
    ]
    assert [CS.DIFFERENCE_STATUS_TOO_LONG] == [c.status for c in ahead]


async def test_invalid_inputs_name_the_field(chat: Chat) -> None:
    """Bad input is INVALID_FIELD with the field path."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    md = a.metadata()

    def send_body(body: chat_pb2.MessageBody | None, cmid: str = "ok") -> object:
        request = CS.SendMessageRequest(chat_id=d.id, client_msg_id=cmid)
        if body is not None:
            request.body.CopyFrom(body)
        return chat.stub.SendMessage(request, metadata=md)

    cases = {
        "body.text": send_body(text("   ")),
        "body": send_body(None),
        "client_msg_id": send_body(text("x"), cmid=""),
        "body.encrypted.ciphertext": send_body(
            chat_pb2.MessageBody(encrypted=chat_pb2.EncryptedBody(ciphertext=b""))
        ),
        "page_token": chat.stub.ListChats(CS.ListChatsRequest(page_token="garbage!"), metadata=md),
        "page_size": chat.stub.ListChats(CS.ListChatsRequest(page_size=-1), metadata=md),
        "max_seq": chat.stub.ReadHistory(
            CS.ReadHistoryRequest(chat_id=d.id, max_seq=0), metadata=md
        ),
        "kind": chat.stub.CreateChat(CS.CreateChatRequest(), metadata=md),
        "title": chat.stub.CreateChat(CS.CreateChatRequest(kind=GROUP, title=" "), metadata=md),
    }
    for field, call in cases.items():
        assert ("INVALID_FIELD", {"field": field}) == await reason_of(call), field
    too_long = send_body(text("x" * 4097))
    assert ("INVALID_FIELD", {"field": "body.text"}) == await reason_of(too_long)


async def test_list_chats_orders_by_activity_and_pages(chat: Chat) -> None:
    """ListChats puts the most recently active chat first and pages with opaque tokens."""
    a, b, c, d = await chat.users(4)
    first = await direct(chat, a, b)
    second = await direct(chat, a, c)
    third = await group(chat, a, d)
    await send(chat, b, first.id, "bump")
    page1 = await chat.stub.ListChats(CS.ListChatsRequest(page_size=2), metadata=a.metadata())
    page2 = await chat.stub.ListChats(
        CS.ListChatsRequest(page_size=2, page_token=page1.next_page_token), metadata=a.metadata()
    )
    assert [first.id, third.id, second.id] == [c.id for c in [*page1.chats, *page2.chats]]
    assert "" == page2.next_page_token
    top = page1.chats[0]
    assert ("bump", 1, 2) == (top.last_message.body.text, top.unread_count, len(top.members))
    assert 0 == len(page1.chats[1].members)


async def test_internal_rpcs_need_the_service_credential(chat: Chat) -> None:
    """ListPeers and GetChatMembers (members and kind) answer a service and refuse a user's
    token."""
    a, b, c, lonely = await chat.users(4)
    d = await direct(chat, a, b)
    g = await group(chat, a, c, b)
    service = (("authorization", f"Service {chat.system.cfg.messaging.internal_token}"),)
    peers = await chat.internal.ListPeers(CI.ListPeersRequest(user_id=a.id), metadata=service)
    members = await chat.internal.GetChatMembers(
        CI.GetChatMembersRequest(chat_id=g.id), metadata=service
    )
    none = await chat.internal.ListPeers(CI.ListPeersRequest(user_id=lonely.id), metadata=service)
    assert sorted([b.id, c.id]) == list(peers.user_ids)
    assert sorted([a.id, b.id, c.id]) == list(members.user_ids)
    assert GROUP == members.kind
    pair = await chat.internal.GetChatMembers(
        CI.GetChatMembersRequest(chat_id=d.id), metadata=service
    )
    assert (DIRECT, sorted([a.id, b.id])) == (pair.kind, list(pair.user_ids))
    assert [] == list(none.user_ids)
    as_user = chat.internal.ListPeers(CI.ListPeersRequest(user_id=a.id), metadata=a.metadata())
    assert ("PERMISSION_DENIED", {}) == await reason_of(as_user)
    unknown = chat.internal.GetChatMembers(
        CI.GetChatMembersRequest(chat_id=10**12), metadata=service
    )
    assert ("CHAT_NOT_FOUND", {}) == await reason_of(unknown)


async def test_batch_get_chat_members_answers_many_chats_at_once(chat: Chat) -> None:
    """BatchGetChatMembers: every existing chat once, ascending, unknown ids left out;
    a user's token, no ids, too many ids or an id below 1 are refused."""
    a, b, c = await chat.users(3)
    d = await direct(chat, a, b)
    g = await group(chat, a, c, b)
    service = (("authorization", f"Service {chat.system.cfg.messaging.internal_token}"),)
    asked = [g.id, 10**12, d.id, g.id]
    reply = await chat.internal.BatchGetChatMembers(
        CI.BatchGetChatMembersRequest(chat_ids=asked), metadata=service
    )
    assert [
        (d.id, DIRECT, sorted([a.id, b.id])),
        (g.id, GROUP, sorted([a.id, b.id, c.id])),
    ] == [(m.chat_id, m.kind, list(m.user_ids)) for m in reply.chats]
    as_user = chat.internal.BatchGetChatMembers(
        CI.BatchGetChatMembersRequest(chat_ids=[d.id]), metadata=a.metadata()
    )
    assert ("PERMISSION_DENIED", {}) == await reason_of(as_user)
    for bad in ([], list(range(1, 1002)), [d.id, 0]):
        refused = chat.internal.BatchGetChatMembers(
            CI.BatchGetChatMembersRequest(chat_ids=bad), metadata=service
        )
        assert ("INVALID_FIELD", {"field": "chat_ids"}) == await reason_of(refused)


async def test_batch_list_peers_answers_many_users_at_once(chat: Chat) -> None:
    """BatchListPeers: every distinct asked user once, ascending, with their peers
    ascending and de-duplicated (never themself), users without peers with an empty list;
    a user's token, no ids, too many ids or an id below 1 are refused."""
    a, b, c, lonely = await chat.users(4)
    await direct(chat, a, b)
    await group(chat, a, c, b)
    service = (("authorization", f"Service {chat.system.cfg.messaging.internal_token}"),)
    asked = [c.id, 10**12, a.id, lonely.id, c.id]
    reply = await chat.internal.BatchListPeers(
        CI.BatchListPeersRequest(user_ids=asked), metadata=service
    )
    expected = {a.id: sorted([b.id, c.id]), c.id: sorted([a.id, b.id]), lonely.id: []}
    assert sorted((expected | {10**12: []}).items()) == [
        (u.user_id, list(u.peer_ids)) for u in reply.users
    ]
    as_user = chat.internal.BatchListPeers(
        CI.BatchListPeersRequest(user_ids=[a.id]), metadata=a.metadata()
    )
    assert ("PERMISSION_DENIED", {}) == await reason_of(as_user)
    for bad in ([], list(range(1, 1002)), [a.id, 0]):
        refused = chat.internal.BatchListPeers(
            CI.BatchListPeersRequest(user_ids=bad), metadata=service
        )
        assert ("INVALID_FIELD", {"field": "user_ids"}) == await reason_of(refused)


async def test_send_fans_out_to_the_members_pod(chat: Chat) -> None:
    """A send reaches the members' pod with per-member patches, minus the sending session."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    async with fake_pod(chat.system, [a, b]) as pod:
        sent = await send(chat, a, d.id, "live", cmid="live-1")
        item = await pod.wait_for_item("new_message")
    assert (a.session_id, "live", 0) == (
        item.exclude_session_id,
        item.update.new_message.message.body.text,
        item.update.pts,
    )
    patches = {r.user_id: r.patch for r in item.recipients}
    assert sent.pts == patches[a.id].pts
    assert "live-1" == patches[a.id].new_message.message.client_msg_id
    assert 1 == patches[b.id].new_message.unread_count


async def test_gone_pod_is_skipped(chat: Chat) -> None:
    """A registered pod without a queue (Unroutable) does not stop delivery to the others."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    namespace = registry_namespace(chat.system.cfg.redis_prefix)
    if chat.system.shape == "embedded":
        state: HotState = chat.system.embedded.hot_state(namespace)
    else:
        state = await open_hot_state(REDIS_URL, namespace)
    try:
        await ConnectionRegistry(state, 60).add(a.id, f"pod-gone-{secrets.token_hex(4)}")
        async with fake_pod(chat.system, [b]) as pod:
            await send(chat, a, d.id, "first")
            await pod.wait_for_item("new_message")
            await send(chat, a, d.id, "second")
            item = await pod.wait_for_item("new_message", text="second")
        assert [b.id] == [r.user_id for r in item.recipients]
    finally:
        await state.close()


async def test_history_pages_in_both_directions(chat: Chat) -> None:
    """GetHistory pages back from the newest, forward with tokens, and around a seq."""
    a, b, stranger = await chat.users(3)
    d = await direct(chat, a, b)
    for i in range(1, 8):
        await send(chat, a, d.id, f"m{i}", cmid=f"h-{d.id}-{i}")

    async def page(**fields: object) -> CS.GetHistoryResponse:
        request = CS.GetHistoryRequest(chat_id=d.id, **fields)  # type: ignore[arg-type]
        return await chat.stub.GetHistory(request, metadata=b.metadata())

    newest = await page(page_size=3)
    assert [5, 6, 7] == [m.seq for m in newest.messages]
    assert ("", {""}) == (newest.next_page_token, {m.client_msg_id for m in newest.messages})
    back = await page(page_size=3, page_token=newest.prev_page_token)
    first = await page(page_size=3, page_token=back.prev_page_token)
    assert ([2, 3, 4], [1]) == ([m.seq for m in back.messages], [m.seq for m in first.messages])
    assert "" == first.prev_page_token
    forward = await page(page_size=3, page_token=first.next_page_token)
    assert [2, 3, 4] == [m.seq for m in forward.messages]
    around = await page(page_size=4, around_seq=4)
    assert [2, 3, 4, 5] == [m.seq for m in around.messages]
    after = await page(page_size=2, after_seq=0)
    assert ["m1", "m2"] == [m.body.text for m in after.messages]
    bad = chat.stub.GetHistory(
        CS.GetHistoryRequest(chat_id=d.id, page_token="e30"), metadata=b.metadata()
    )
    assert ("INVALID_FIELD", {"field": "page_token"}) == await reason_of(bad)
    hidden = chat.stub.GetHistory(CS.GetHistoryRequest(chat_id=d.id), metadata=stranger.metadata())
    assert ("CHAT_NOT_FOUND", {}) == await reason_of(hidden)


async def test_edit_replaces_own_message_once(chat: Chat) -> None:
    """The sender edits their message (MessageEdited logged); a same-body retry changes nothing."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    sent = await send(chat, a, d.id, "draft")

    def edit(user: User, body: str) -> object:
        request = CS.EditMessageRequest(chat_id=d.id, message_id=sent.message_id, body=text(body))
        return chat.stub.EditMessage(request, metadata=user.metadata())

    edited = await edit(a, "final")  # type: ignore[misc]
    again = await edit(a, "final")  # type: ignore[misc]
    assert ("final", sent.seq, True) == (
        edited.message.body.text,
        edited.message.seq,
        edited.message.edited_at_ms > 0,
    )
    assert (sent.pts + 1, 1, 0, 0) == (edited.pts, edited.pts_count, again.pts, again.pts_count)
    assert ("PERMISSION_DENIED", {}) == await reason_of(edit(b, "hijack"))
    b_updates = await difference(chat, b, 0)
    assert "final" == b_updates[-1].message_edited.message.body.text
