"""The chat service's domain values: plain frozen dataclasses, no I/O, no protobuf.

Integer codes are the ones stored in the database and used on the wire (the proto enums
share them), so translating never needs a lookup table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ChatKind(IntEnum):
    """Direct (one pair of users) or group; fixed at creation."""

    DIRECT = 1
    GROUP = 2


class Role(IntEnum):
    """A member's role; lower is more powerful."""

    OWNER = 1
    ADMIN = 2
    MEMBER = 3


class BodyKind(IntEnum):
    """Which variant of MessageBody a message holds."""

    TEXT = 1
    ENCRYPTED = 2


class UpdateKind(IntEnum):
    """The kind of an update-log row: the field number of its ``Update`` oneof variant."""

    NEW_MESSAGE = 4
    MESSAGE_EDITED = 5
    MESSAGES_DELETED = 6
    READ_INBOX = 7
    READ_OUTBOX = 8
    NEW_CHAT = 9
    MEMBERS_JOINED = 10
    MEMBER_LEFT = 11


@dataclass(frozen=True, slots=True)
class Body:
    """A message's content: text, or an opaque encrypted header and ciphertext."""

    kind: BodyKind
    text: str = ""
    header: bytes = b""
    ciphertext: bytes = b""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a chat."""

    user_id: int
    role: Role
    joined_at_ms: int


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message; ``client_msg_id`` is shown only to its sender."""

    id: int
    chat_id: int
    seq: int
    sender_id: int
    date_ms: int
    body: Body
    edited_at_ms: int = 0
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class ChatView:
    """A chat as one member sees it (the per-member fields are that member's)."""

    id: int
    kind: ChatKind
    title: str
    members: tuple[Member, ...]
    member_count: int
    last_message: Message | None
    last_seq: int
    unread_count: int
    read_inbox_max_seq: int
    read_outbox_max_seq: int
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class SendItem:
    """One validated send: the chat, the sender's idempotency id and the body."""

    chat_id: int
    client_msg_id: str
    body: Body


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A send and who makes it: the sending user and their device's session."""

    sender_id: int
    session_id: str
    item: SendItem


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the server assigned to a sent message; a retry returns the same values."""

    message_id: int
    seq: int
    date_ms: int
    pts: int
    pts_count: int = 1


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One ReadHistory call: who read which chat up to where, from which session."""

    user_id: int
    session_id: str
    chat_id: int
    max_seq: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of a read: the reader's pts (0 when nothing moved) and unread count."""

    pts: int
    pts_count: int
    unread_count: int


@dataclass(frozen=True, slots=True)
class Invited:
    """The outcome of InviteMembers."""

    added_user_ids: tuple[int, ...]
    member_count: int
    pts: int
    pts_count: int
