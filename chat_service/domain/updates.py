"""Which ``Update`` each chat event logs, as pure functions of the event's values.

An event's update is a shared part (the same bytes for every recipient) plus optional
per-recipient patches (the fields only that recipient sees: their unread count); the
update log stores each recipient's merge of the two (``adapters/updatelog.py``). The
NewMessage of a send is built in ``send_plan.py``, next to the unread arithmetic it needs.

The domain builds protobuf here, unlike ``model.py``: an ``Update`` is the event itself,
stored as it is sent (the log and the live push carry the same bytes), so which fields
an event sets is a decision, not a translation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from minitg.chat.v1 import updates_pb2

from chat_service.domain.model import ChatKind, ChatView, Member, Message
from chat_service.wire import chat_to_proto, member_to_proto, message_to_proto

Patches = dict[int, updates_pb2.Update]


def new_chat_view(
    chat_id: int,
    kind: ChatKind,
    title: str,
    created_at_ms: int,
    last_seq: int,
    members: Sequence[Member],
    read_inbox_seq: int,
    read_outbox_seq: int,
    last_message: Message | None = None,
) -> ChatView:
    """The chat as a member who just joined it sees it: nothing unread, read up to
    ``read_inbox_seq`` (a new chat: 0; an invite: the chat's last seq)."""
    return ChatView(
        id=chat_id,
        kind=kind,
        title=title,
        members=tuple(members),
        member_count=len(members),
        last_message=last_message,
        last_seq=last_seq,
        unread_count=0,
        read_inbox_max_seq=read_inbox_seq,
        read_outbox_max_seq=read_outbox_seq,
        created_at_ms=created_at_ms,
    )


def new_chat(view: ChatView, added_by: int, *, for_user: int) -> updates_pb2.Update:
    """NewChat for the members of a new chat or the users invited into one."""
    return updates_pb2.Update(
        new_chat=updates_pb2.NewChat(
            chat=chat_to_proto(view, for_user=for_user), added_by_user_id=added_by
        )
    )


def members_joined(
    chat_id: int, joined: Sequence[Member], inviter: int, member_count: int
) -> updates_pb2.Update:
    """MembersJoined for the members who were there before the invite."""
    return updates_pb2.Update(
        members_joined=updates_pb2.MembersJoined(
            chat_id=chat_id,
            members=[member_to_proto(m) for m in joined],
            inviter_user_id=inviter,
            member_count=member_count,
        )
    )


def member_left(
    chat_id: int, user_id: int, member_count: int, new_owner: int
) -> updates_pb2.Update:
    """MemberLeft for the leaver and the remaining members (``new_owner`` 0: unchanged)."""
    return updates_pb2.Update(
        member_left=updates_pb2.MemberLeft(
            chat_id=chat_id,
            user_id=user_id,
            member_count=member_count,
            new_owner_user_id=new_owner,
        )
    )


def message_edited(message: Message) -> updates_pb2.Update:
    """MessageEdited for every member: the message after the edit, no client_msg_id."""
    return updates_pb2.Update(
        message_edited=updates_pb2.MessageEdited(message=message_to_proto(message, for_user=0))
    )


def messages_deleted(
    chat_id: int, message_ids: Sequence[int], seqs: Sequence[int], unread: Mapping[int, int]
) -> tuple[updates_pb2.Update, Patches]:
    """MessagesDeleted for every recipient in ``unread`` (user -> their unread count after
    the delete); a zero count needs no patch (it is the field's default)."""
    shared = updates_pb2.MessagesDeleted(chat_id=chat_id, message_ids=message_ids, seqs=seqs)
    patches = {
        user_id: updates_pb2.Update(messages_deleted=updates_pb2.MessagesDeleted(unread_count=n))
        for user_id, n in unread.items()
        if n
    }
    return updates_pb2.Update(messages_deleted=shared), patches


def read_inbox(
    chat_id: int, max_seq: int, reader: int, unread: int
) -> tuple[updates_pb2.Update, Patches]:
    """ReadInbox for the reader's devices: the new watermark and their unread count."""
    shared = updates_pb2.Update(read_inbox=updates_pb2.ReadInbox(chat_id=chat_id, max_seq=max_seq))
    patch = updates_pb2.Update(read_inbox=updates_pb2.ReadInbox(unread_count=unread))
    return shared, {reader: patch}


def read_outbox(chat_id: int, max_seq: int, reader: int) -> updates_pb2.Update:
    """ReadOutbox for the members whose read_outbox_max_seq rose
    (``rules.read_outbox_recipients``)."""
    return updates_pb2.Update(
        read_outbox=updates_pb2.ReadOutbox(chat_id=chat_id, max_seq=max_seq, reader_user_id=reader)
    )
