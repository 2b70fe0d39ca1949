"""Catch-up and history at scale, on both backend shapes: what an offline device missed
comes back exactly once, in pts order, whatever the slice size; history pages are stable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from minitg.chat.v1 import chat_service_pb2, chat_service_pb2_grpc, updates_pb2

from tests.api.test_chat_service import Chat, direct, group, text
from tests.harness import SHAPES, running_system
from tests.harness import TestUser as User

pytestmark = pytest.mark.asyncio(loop_scope="module")

CS = chat_service_pb2
Key = tuple[object, ...]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def chat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Chat]:
    tmp: Path = tmp_path_factory.mktemp(f"catchup-{request.param}")
    env = {"MINITG_SESSION_CHECK_TTL_SECONDS": "0"}
    async with running_system(request.param, tmp, roles=("auth", "chat"), env=env) as system:
        yield Chat(system, chat_service_pb2_grpc.ChatServiceStub(system.channel("chat")))


async def second_device(chat: Chat, user: User) -> User:
    """A new session (device) of ``user``."""
    stub = auth_service_pb2_grpc.AuthServiceStub(chat.system.channel("auth"))
    reply = await stub.Login(
        auth_service_pb2.LoginRequest(email=user.email, password=user.password, device_name="2")
    )
    return User(
        user.id, user.email, user.password, reply.session_id,
        reply.tokens.access_token, reply.tokens.refresh_token,
    )  # fmt: skip


def key(update: updates_pb2.Update) -> Key:
    """What identifies an update for the comparison: its kind and subject."""
    kind = update.WhichOneof("update")
    if kind == "new_message":
        return kind, update.new_message.message.id
    if kind == "message_edited":
        return kind, update.message_edited.message.id, update.message_edited.message.body.text
    if kind == "messages_deleted":
        return kind, tuple(update.messages_deleted.message_ids)
    if kind == "read_inbox":
        return kind, update.read_inbox.chat_id, update.read_inbox.max_seq
    return (kind,)


def unread_of(update: updates_pb2.Update) -> tuple[int, int] | None:
    """(chat id, the recipient's unread count) of an update that carries one."""
    kind = update.WhichOneof("update")
    if kind == "new_message":
        return update.new_message.message.chat_id, update.new_message.unread_count
    if kind == "messages_deleted":
        return update.messages_deleted.chat_id, update.messages_deleted.unread_count
    if kind == "read_inbox":
        return update.read_inbox.chat_id, update.read_inbox.unread_count
    return None


async def difference_slices(
    chat: Chat, user: User, pts: int, limit: int
) -> tuple[list[updates_pb2.Update], int]:
    """Every update after ``pts``, calling again from each SLICE's intermediate_pts; also
    how many calls that took."""
    updates: list[updates_pb2.Update] = []
    calls = 0
    while True:
        calls += 1
        request = CS.GetDifferenceRequest(pts=pts, limit=limit)
        chunks = [c async for c in chat.stub.GetDifference(request, metadata=user.metadata())]
        for chunk in chunks:
            assert len(chunk.updates) <= limit
            updates += chunk.updates
        last = chunks[-1]
        if last.status == CS.DIFFERENCE_STATUS_COMPLETE:
            return updates, calls
        assert CS.DIFFERENCE_STATUS_SLICE == last.status
        assert updates[-1].pts == last.intermediate_pts
        pts = last.intermediate_pts


async def test_offline_device_catches_up_exactly(chat: Chat) -> None:
    """B offline: 100 messages over 5 chats, edits, deletes and B's reads on another device;
    B's GetDifference returns exactly those updates in pts order, sliced or not."""
    a, b, c = await chat.users(3)
    b2 = await second_device(chat, b)
    chats = [(await direct(chat, a, b)).id]
    chats += [(await group(chat, a, b, c, title=f"g{i}")).id for i in range(4)]
    start = (await chat.stub.GetState(CS.GetStateRequest(), metadata=b.metadata())).state.pts
    expected: list[Key] = []
    sent: list[CS.SendMessageResponse] = []
    for batch in range(10):
        items = [
            CS.SendMessageRequest(
                chat_id=chats[n % 5], client_msg_id=f"cu-{batch}-{n}", body=text(f"m{batch}.{n}")
            )
            for n in range(10)
        ]
        sent += [r.response for r in await chat.send_many(a, items)]
    expected += [("new_message", s.message_id) for s in sent]
    chat_of = {s.message_id: chats[n % 5] for n, s in enumerate(sent)}
    for s in sent[:5]:
        edit = CS.EditMessageRequest(
            chat_id=chat_of[s.message_id], message_id=s.message_id, body=text("edited")
        )
        await chat.stub.EditMessage(edit, metadata=a.metadata())
        expected.append(("message_edited", s.message_id, "edited"))
    for s in sent[5:10]:
        remove = CS.DeleteMessagesRequest(
            chat_id=chat_of[s.message_id], message_ids=[s.message_id], for_everyone=True
        )
        await chat.stub.DeleteMessages(remove, metadata=a.metadata())
        expected.append(("messages_deleted", (s.message_id,)))
    for s in sent[10:13]:
        remove = CS.DeleteMessagesRequest(chat_id=chat_of[s.message_id], message_ids=[s.message_id])
        await chat.stub.DeleteMessages(remove, metadata=b2.metadata())
        expected.append(("messages_deleted", (s.message_id,)))
    for chat_id, seq in zip(chats, (20, 7, 12, 3, 20), strict=True):
        read = CS.ReadHistoryRequest(chat_id=chat_id, max_seq=seq)
        await chat.stub.ReadHistory(read, metadata=b2.metadata())
        expected.append(("read_inbox", chat_id, seq))

    whole, calls = await difference_slices(chat, b, start, limit=1000)
    sliced, slice_calls = await difference_slices(chat, b, start, limit=30)
    assert (118, 1, 4) == (len(expected), calls, slice_calls)  # 30 + 30 + 30 + 28
    assert expected == [key(u) for u in whole]
    assert list(range(start + 1, start + len(expected) + 1)) == [u.pts for u in whole]
    assert whole == sliced

    # A client applying them ends with the server's unread counts.
    unread = dict(found for u in whole if (found := unread_of(u)) is not None)
    listed = await chat.stub.ListChats(CS.ListChatsRequest(), metadata=b.metadata())
    assert {c.id: c.unread_count for c in listed.chats} == unread


async def test_history_pages_are_stable_under_concurrent_sends(chat: Chat) -> None:
    """250 messages page forward as 100, 100, 50 and then no token; paging back from the
    newest page while others send returns the same 250 messages exactly once."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)

    async def send_batch(prefix: str, count: int) -> None:
        items = [
            CS.SendMessageRequest(chat_id=d.id, client_msg_id=f"{prefix}-{n}", body=text(f"{n}"))
            for n in range(count)
        ]
        await chat.send_many(a, items)

    for batch, count in enumerate((100, 100, 50)):
        await send_batch(f"h{batch}", count)

    async def pages(
        between: Callable[[], Awaitable[object]] | None = None, **anchor: int
    ) -> list[CS.GetHistoryResponse]:
        """Every page from the anchor on, in its direction; ``between`` runs after the first."""
        request = CS.GetHistoryRequest(chat_id=d.id, page_size=100, **anchor)  # type: ignore[arg-type]
        out = [await chat.stub.GetHistory(request, metadata=b.metadata())]
        if between is not None:
            await between()
        forward = "after_seq" in anchor
        while token := (out[-1].next_page_token if forward else out[-1].prev_page_token):
            request = CS.GetHistoryRequest(chat_id=d.id, page_size=100, page_token=token)
            out.append(await chat.stub.GetHistory(request, metadata=b.metadata()))
        return out

    forward = await pages(after_seq=0)
    assert [100, 100, 50] == [len(p.messages) for p in forward]
    assert "" == forward[-1].next_page_token

    async def others_send() -> object:
        return await asyncio.gather(*(send_batch(f"c{i}", 10) for i in range(5)))

    backward = await pages(others_send, before_seq=251)
    assert [100, 100, 50] == [len(p.messages) for p in backward]
    assert list(range(1, 251)) == [m.seq for p in reversed(backward) for m in p.messages]
    view = await chat.stub.GetChat(CS.GetChatRequest(chat_id=d.id), metadata=b.metadata())
    assert 300 == view.chat.last_seq
