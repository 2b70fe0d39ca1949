"""The chat service's decisions as pure functions: validation, membership, reads, edits,
deletes.

Nothing here does I/O or reads a clock; callers pass what they read (``now`` included).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from chat_service.domain.errors import ChatFull
from chat_service.domain.model import Body, BodyKind, ChatKind, Member, Message, Role
from svckit.errors import InvalidField, PermissionDenied
from svckit.reasons import Reason

MAX_ID_CHARS = 64
MAX_TITLE_CHARS = 128
MAX_HEADER_BYTES = 1024
MAX_CIPHERTEXT_BYTES = 32768
MAX_IDS_PER_CALL = 100


def validate_idempotency_id(value: str, field: str, *, required: bool) -> str:
    """An AIP-155 id: 1 to 64 printable ASCII characters (empty only when optional)."""
    if not value:
        if required:
            raise InvalidField(field, f"{field} is required")
        return value
    if len(value) > MAX_ID_CHARS or not all(" " < ch <= "~" for ch in value):
        raise InvalidField(field, f"{field} must be 1 to 64 printable ASCII characters")
    return value


def validate_body(body: Body | None, field: str, *, max_text_chars: int) -> Body:
    """Check a body against the limits of chat.proto's MessageBody."""
    if body is None:
        raise InvalidField(field, f"{field} must hold text or encrypted content")
    if body.kind is BodyKind.TEXT:
        if not body.text.strip():
            raise InvalidField(f"{field}.text", "text must not be empty or only whitespace")
        if len(body.text) > max_text_chars:
            raise InvalidField(f"{field}.text", f"text is longer than {max_text_chars} characters")
        if not _is_valid_utf8(body.text):
            raise InvalidField(f"{field}.text", "text is not valid UTF-8")
        return body
    if len(body.header) > MAX_HEADER_BYTES:
        raise InvalidField(f"{field}.encrypted.header", "header is longer than 1024 bytes")
    if not 1 <= len(body.ciphertext) <= MAX_CIPHERTEXT_BYTES:
        raise InvalidField(
            f"{field}.encrypted.ciphertext", "ciphertext must be 1 to 32768 bytes long"
        )
    return body


def _is_valid_utf8(text: str) -> bool:
    """Lone surrogates cannot be encoded; protobuf would refuse them on the way out."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalize_title(title: str) -> str:
    """A group title: 1 to 128 characters after trimming surrounding whitespace."""
    trimmed = title.strip()
    if not 1 <= len(trimmed) <= MAX_TITLE_CHARS:
        raise InvalidField("title", "title must be 1 to 128 characters")
    return trimmed


def direct_key(a: int, b: int) -> str:
    """The unique key of the direct chat between two users, whatever the order."""
    low, high = sorted((a, b))
    return f"{low}:{high}"


def initial_group_members(caller: int, others: Iterable[int], max_members: int) -> list[int]:
    """The caller first, then the other ids deduplicated in order; CHAT_FULL above the cap."""
    ids = [caller, *(u for u in dict.fromkeys(others) if u != caller)]
    if any(u <= 0 for u in ids):
        raise InvalidField("member_user_ids", "user ids must be positive")
    if len(ids) > max_members:
        raise ChatFull(f"a group holds at most {max_members} members")
    return ids


def ids_to_invite(requested: Sequence[int], current: Iterable[int], max_members: int) -> list[int]:
    """The requested users who are not members yet, in order; CHAT_FULL above the cap."""
    if not 1 <= len(requested) <= MAX_IDS_PER_CALL:
        raise InvalidField("user_ids", "user_ids must hold 1 to 100 ids")
    if any(u <= 0 for u in requested):
        raise InvalidField("user_ids", "user ids must be positive")
    members = set(current)
    added = [u for u in dict.fromkeys(requested) if u not in members]
    if len(members) + len(added) > max_members:
        raise ChatFull(f"a group holds at most {max_members} members")
    return added


def group_fingerprint(title: str, member_ids: Iterable[int]) -> str:
    """What a CreateChat retry must repeat: the title and the set of initial members."""
    canonical = title + "\x00" + ",".join(str(u) for u in sorted(set(member_ids)))
    return hashlib.sha256(canonical.encode()).hexdigest()


def founding_members(kind: ChatKind, member_ids: Sequence[int], now_ms: int) -> list[Member]:
    """The members a new chat starts with, in order: a group's first id (its creator) owns
    it and the others are plain members; a direct chat has no owner."""
    return [
        Member(uid, Role.OWNER if i == 0 and kind is ChatKind.GROUP else Role.MEMBER, now_ms)
        for i, uid in enumerate(member_ids)
    ]


def invited_members(user_ids: Sequence[int], now_ms: int) -> list[Member]:
    """Users invited into a group join as plain members (an invite never grants a role)."""
    return [Member(uid, Role.MEMBER, now_ms) for uid in user_ids]


def next_owner(remaining: Sequence[Member]) -> int:
    """Who owns a group after its owner left: the longest-standing admin, else the
    longest-standing member (ties by lower user id); 0 when nobody remains."""
    if not remaining:
        return 0
    best = min(remaining, key=lambda m: (m.role is not Role.ADMIN, m.joined_at_ms, m.user_id))
    return best.user_id


def read_target(max_seq: int, current: int, last_seq: int) -> int:
    """The new read watermark for ReadHistory(max_seq), or 0 when it would not move:
    clamped to the chat's last seq, never backwards."""
    if max_seq < 1:
        raise InvalidField("max_seq", "max_seq must be at least 1")
    target = min(max_seq, last_seq)
    return target if target > current else 0


def read_outbox_recipients(watermarks: Mapping[int, int], reader: int, new_seq: int) -> list[int]:
    """The members whose read_outbox_max_seq (the highest watermark among the OTHER
    members) rises when ``reader``'s watermark moves up to ``new_seq``.

    ``watermarks`` holds every member's read_inbox_seq before the move, the reader's
    included. Computed with the top two watermarks, so it stays linear in the members.
    """
    ranked = sorted(((seq, uid) for uid, seq in watermarks.items() if uid != reader), reverse=True)
    top = ranked[0] if ranked else (0, 0)
    second = ranked[1][0] if len(ranked) > 1 else 0
    old_reader = watermarks.get(reader, 0)
    recipients = []
    for uid, _seq in watermarks.items():
        if uid == reader:
            continue
        best_other = max(second if uid == top[1] else top[0], old_reader)
        if new_seq > best_other:
            recipients.append(uid)
    return sorted(recipients)


def read_outbox_max(watermarks: Mapping[int, int], user_id: int) -> int:
    """A member's read_outbox_max_seq: the highest read watermark among the others."""
    return max((seq for uid, seq in watermarks.items() if uid != user_id), default=0)


def edited_message(
    old: Message, editor: int, body: Body, now_ms: int, window_ms: int
) -> Message | None:
    """The message after ``editor`` replaces its body at ``now_ms``, or None when the body
    is unchanged (nothing to write or log). Only the sender may edit, within ``window_ms``
    of the send, keeping the body's variant."""
    if old.sender_id != editor:
        raise PermissionDenied("only the sender may edit a message")
    if now_ms - old.date_ms > window_ms:
        raise PermissionDenied("the edit window has passed", reason=Reason.EDIT_WINDOW_EXPIRED)
    if old.body.kind is not body.kind:
        raise InvalidField("body", "an edit must keep the body's variant")
    if old.body == body:
        return None
    return Message(
        old.id, old.chat_id, old.seq, old.sender_id, old.date_ms, body,
        edited_at_ms=now_ms, client_msg_id=old.client_msg_id,
    )  # fmt: skip


def message_ids_to_delete(requested: Sequence[int]) -> list[int]:
    """DeleteMessages' ids: 1 to 100 (duplicates allowed), deduplicated in order."""
    if not 1 <= len(requested) <= MAX_IDS_PER_CALL:
        raise InvalidField("message_ids", "message_ids must hold 1 to 100 ids")
    return list(dict.fromkeys(requested))


def check_delete_for_everyone(
    caller: int, kind: ChatKind, role: Role, sender_ids: Iterable[int]
) -> None:
    """Anyone may delete their own messages for everyone; in a group the owner and admins
    may delete anyone's. Otherwise the whole call is PERMISSION_DENIED."""
    if kind is ChatKind.GROUP and role <= Role.ADMIN:
        return
    if any(sender != caller for sender in sender_ids):
        raise PermissionDenied("only the sender or a group admin may delete a message for everyone")
