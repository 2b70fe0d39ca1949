"""Domain values <-> protobuf messages, shared by the servicer (responses) and the update
log (whose stored payloads and fan-out envelopes are protobuf ``Update``s)."""

from __future__ import annotations

from typing import cast

from minitg.chat.v1 import chat_pb2

from chat_service.domain.model import Body, BodyKind, ChatView, Member, Message


def body_from_proto(body: chat_pb2.MessageBody) -> Body | None:
    """The domain body of a request, or None when no variant is set."""
    variant = body.WhichOneof("content")
    if variant == "text":
        return Body(BodyKind.TEXT, text=body.text)
    if variant == "encrypted":
        return Body(
            BodyKind.ENCRYPTED,
            header=bytes(body.encrypted.header),
            ciphertext=bytes(body.encrypted.ciphertext),
        )
    return None


def body_to_proto(body: Body) -> chat_pb2.MessageBody:
    if body.kind is BodyKind.TEXT:
        return chat_pb2.MessageBody(text=body.text)
    return chat_pb2.MessageBody(
        encrypted=chat_pb2.EncryptedBody(header=body.header, ciphertext=body.ciphertext)
    )


def member_to_proto(member: Member) -> chat_pb2.Member:
    return chat_pb2.Member(
        user_id=member.user_id,
        role=cast("chat_pb2.MemberRole.ValueType", int(member.role)),
        joined_at_ms=member.joined_at_ms,
    )


def message_to_proto(message: Message, *, for_user: int) -> chat_pb2.Message:
    """The message as ``for_user`` sees it: client_msg_id only for its sender."""
    return chat_pb2.Message(
        id=message.id,
        chat_id=message.chat_id,
        seq=message.seq,
        sender_user_id=message.sender_id,
        date_ms=message.date_ms,
        body=body_to_proto(message.body),
        edited_at_ms=message.edited_at_ms,
        client_msg_id=message.client_msg_id if message.sender_id == for_user else "",
    )


def chat_to_proto(view: ChatView, *, for_user: int) -> chat_pb2.Chat:
    chat = chat_pb2.Chat(
        id=view.id,
        kind=cast("chat_pb2.ChatKind.ValueType", int(view.kind)),
        title=view.title,
        members=[member_to_proto(m) for m in view.members],
        member_count=view.member_count,
        last_seq=view.last_seq,
        unread_count=view.unread_count,
        read_inbox_max_seq=view.read_inbox_max_seq,
        read_outbox_max_seq=view.read_outbox_max_seq,
        created_at_ms=view.created_at_ms,
    )
    if view.last_message is not None:
        chat.last_message.CopyFrom(message_to_proto(view.last_message, for_user=for_user))
    return chat
