"""DeleteMessages over real gRPC, on both backend shapes: permissions, unread, updates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from minitg.chat.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc

from tests.api.test_chat_service import (
    Chat,
    difference,
    direct,
    fake_pod,
    group,
    reason_of,
    send,
    text,
)
from tests.harness import SHAPES, running_system
from tests.harness import TestUser as User

pytestmark = pytest.mark.asyncio(loop_scope="module")

CS = chat_service_pb2


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def chat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Chat]:
    tmp: Path = tmp_path_factory.mktemp(f"delete-{request.param}")
    env = {"MINITG_SESSION_CHECK_TTL_SECONDS": "0"}
    async with running_system(request.param, tmp, roles=("auth", "chat"), env=env) as system:
        yield Chat(system, chat_service_pb2_grpc.ChatServiceStub(system.channel("chat")))


async def delete(
    chat: Chat, user: User, chat_id: int, ids: list[int], *, for_everyone: bool
) -> CS.DeleteMessagesResponse:
    request = CS.DeleteMessagesRequest(chat_id=chat_id, message_ids=ids, for_everyone=for_everyone)
    return await chat.stub.DeleteMessages(request, metadata=user.metadata())


async def history(chat: Chat, user: User, chat_id: int) -> list[str]:
    reply = await chat.stub.GetHistory(
        CS.GetHistoryRequest(chat_id=chat_id, page_size=100), metadata=user.metadata()
    )
    return [m.body.text for m in reply.messages]


async def view(chat: Chat, user: User, chat_id: int) -> chat_pb2.Chat:
    reply = await chat.stub.GetChat(CS.GetChatRequest(chat_id=chat_id), metadata=user.metadata())
    return reply.chat


async def pts_of(chat: Chat, user: User) -> int:
    return (await chat.stub.GetState(CS.GetStateRequest(), metadata=user.metadata())).state.pts


async def test_author_deletes_for_everyone(chat: Chat) -> None:
    """The author's delete hides the messages from everyone, lowers unread and logs
    MessagesDeleted with ids, seqs and each member's unread count; a retry is pts 0."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    sent = [await send(chat, a, d.id, f"m{i}") for i in range(4)]
    await chat.stub.ReadHistory(
        CS.ReadHistoryRequest(chat_id=d.id, max_seq=1), metadata=b.metadata()
    )
    a_before, b_before = await pts_of(chat, a), await pts_of(chat, b)
    gone = [sent[3].message_id, sent[0].message_id, 10**12]  # m0 already read by b
    deleted = await delete(chat, a, d.id, gone, for_everyone=True)
    retry = await delete(chat, a, d.id, gone, for_everyone=True)
    assert (a_before + 1, 1) == (deleted.pts, deleted.pts_count)
    assert (0, 0) == (retry.pts, retry.pts_count)
    assert ["m1", "m2"] == await history(chat, b, d.id)
    assert ["m1", "m2"] == await history(chat, a, d.id)
    b_view = await view(chat, b, d.id)
    assert ("m2", 2, 4) == (b_view.last_message.body.text, b_view.unread_count, b_view.last_seq)
    [update] = await difference(chat, b, b_before)
    removed = update.messages_deleted
    assert (d.id, [sent[0].message_id, sent[3].message_id], [1, 4], 2, b_before + 1) == (
        removed.chat_id,
        list(removed.message_ids),
        list(removed.seqs),
        removed.unread_count,
        update.pts,
    )
    listed = await chat.stub.ListChats(CS.ListChatsRequest(), metadata=b.metadata())
    assert "m2" == next(c for c in listed.chats if c.id == d.id).last_message.body.text


async def test_delete_for_everyone_needs_author_or_group_admin(chat: Chat) -> None:
    """Someone else's message is PERMISSION_DENIED (nothing deleted) unless the caller owns
    or administers the group."""
    a, b, c = await chat.users(3)
    d = await direct(chat, a, b)
    mine, theirs = await send(chat, b, d.id, "mine"), await send(chat, a, d.id, "theirs")
    both = delete(chat, b, d.id, [mine.message_id, theirs.message_id], for_everyone=True)
    assert ("PERMISSION_DENIED", {}) == await reason_of(both)
    assert ["mine", "theirs"] == await history(chat, a, d.id)
    g = await group(chat, a, b, c)
    by_b = await send(chat, b, g.id, "from b")
    denied = delete(chat, c, g.id, [by_b.message_id], for_everyone=True)
    assert ("PERMISSION_DENIED", {}) == await reason_of(denied)
    by_owner = await delete(chat, a, g.id, [by_b.message_id], for_everyone=True)
    assert 1 == by_owner.pts_count
    assert [] == await history(chat, c, g.id)


async def test_delete_for_me_hides_only_for_the_caller(chat: Chat) -> None:
    """Deleting for oneself hides the message from the caller only, lowers the caller's
    unread and logs MessagesDeleted to the caller alone; a retry is pts 0."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    first, _ = await send(chat, a, d.id, "one"), await send(chat, a, d.id, "two")
    a_before = await pts_of(chat, a)
    hidden = await delete(chat, b, d.id, [first.message_id], for_everyone=False)
    retry = await delete(chat, b, d.id, [first.message_id], for_everyone=False)
    assert (1, 0) == (hidden.pts_count, retry.pts)
    assert (["two"], ["one", "two"]) == (await history(chat, b, d.id), await history(chat, a, d.id))
    assert (1, a_before) == ((await view(chat, b, d.id)).unread_count, await pts_of(chat, a))
    [update] = await difference(chat, b, hidden.pts - 1)
    assert ([first.message_id], 1) == (
        list(update.messages_deleted.message_ids),
        update.messages_deleted.unread_count,
    )


async def test_deleted_message_cannot_be_edited_and_resend_is_idempotent(chat: Chat) -> None:
    """Editing a deleted message is MESSAGE_NOT_FOUND; re-sending its client_msg_id returns
    the original result and sends nothing."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    sent = await send(chat, a, d.id, "oops", cmid="del-1")
    await delete(chat, a, d.id, [sent.message_id], for_everyone=True)
    edit = chat.stub.EditMessage(
        CS.EditMessageRequest(chat_id=d.id, message_id=sent.message_id, body=text("fixed")),
        metadata=a.metadata(),
    )
    assert ("MESSAGE_NOT_FOUND", {}) == await reason_of(edit)
    assert sent == await send(chat, a, d.id, "oops", cmid="del-1")
    assert (1, 0) == (
        (await view(chat, b, d.id)).last_seq,
        (await view(chat, b, d.id)).unread_count,
    )


async def test_delete_checks_membership_and_ids(chat: Chat) -> None:
    """A non-member gets CHAT_NOT_FOUND; no ids or more than 100 are INVALID_FIELD."""
    a, b, stranger = await chat.users(3)
    d = await direct(chat, a, b)
    sent = await send(chat, a, d.id, "x")
    outsider = delete(chat, stranger, d.id, [sent.message_id], for_everyone=False)
    assert ("CHAT_NOT_FOUND", {}) == await reason_of(outsider)
    for ids in ([], list(range(1, 102))):
        call = delete(chat, a, d.id, ids, for_everyone=True)
        assert ("INVALID_FIELD", {"field": "message_ids"}) == await reason_of(call)


async def test_delete_reaches_the_members_pod(chat: Chat) -> None:
    """MessagesDeleted fans out through the outbox with each member's unread patch."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    sent = await send(chat, a, d.id, "gone")
    async with fake_pod(chat.system, [a, b]) as pod:
        deleted = await delete(chat, a, d.id, [sent.message_id], for_everyone=True)
        item = await pod.wait_for_item("messages_deleted")
    patches = {r.user_id: r.patch for r in item.recipients}
    assert (a.session_id, [sent.message_id]) == (
        item.exclude_session_id,
        list(item.update.messages_deleted.message_ids),
    )
    assert deleted.pts == patches[a.id].pts
    assert (0, True) == (patches[b.id].messages_deleted.unread_count, patches[b.id].pts > 0)
