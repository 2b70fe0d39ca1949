"""Edits, new members and the updates chat events log, as pure functions of their inputs."""

from __future__ import annotations

import pytest

from chat_service.domain import rules, updates
from chat_service.domain.model import Body, BodyKind, ChatKind, Member, Message, Role
from svckit.errors import InvalidField, PermissionDenied

HOUR_MS = 3_600_000
OLD = Message(7, 10, 3, 1, 1_000, Body(BodyKind.TEXT, text="hi"), client_msg_id="m1")
NEW_BODY = Body(BodyKind.TEXT, text="hello")


def test_an_edit_at_the_window_edge_is_accepted() -> None:
    """Exactly ``window_ms`` after the send the sender may still edit; the message keeps
    its identity and client_msg_id and takes ``now`` as edited_at_ms."""
    edited = rules.edited_message(OLD, 1, NEW_BODY, 1_000 + HOUR_MS, HOUR_MS)
    assert edited is not None
    assert (7, 3, NEW_BODY, 1_000 + HOUR_MS, "m1") == (
        edited.id, edited.seq, edited.body, edited.edited_at_ms, edited.client_msg_id,
    )  # fmt: skip


def test_an_edit_past_the_window_is_edit_window_expired() -> None:
    """One millisecond past the window the edit is PERMISSION_DENIED, EDIT_WINDOW_EXPIRED."""
    with pytest.raises(PermissionDenied) as exc:
        rules.edited_message(OLD, 1, NEW_BODY, 1_001 + HOUR_MS, HOUR_MS)
    assert "EDIT_WINDOW_EXPIRED" == exc.value.reason


def test_only_the_sender_may_edit() -> None:
    """Another member's edit is PERMISSION_DENIED, whatever the time."""
    with pytest.raises(PermissionDenied) as exc:
        rules.edited_message(OLD, 2, NEW_BODY, 1_000, HOUR_MS)
    assert "PERMISSION_DENIED" == exc.value.reason


def test_an_edit_keeps_the_body_variant() -> None:
    """Replacing text with an encrypted body is INVALID_FIELD on ``body``."""
    sealed = Body(BodyKind.ENCRYPTED, ciphertext=b"x")
    with pytest.raises(InvalidField) as exc:
        rules.edited_message(OLD, 1, sealed, 1_000, HOUR_MS)
    assert "body" == exc.value.metadata["field"]


def test_an_unchanged_body_is_no_edit() -> None:
    """The same body again changes nothing: None (nothing written, nothing logged)."""
    assert None is rules.edited_message(OLD, 1, OLD.body, 2_000, HOUR_MS)


def test_message_edited_hides_the_client_msg_id() -> None:
    """MessageEdited carries the new body and edit time but no client_msg_id."""
    update = updates.message_edited(OLD)
    assert ("hi", "") == (
        update.message_edited.message.body.text,
        update.message_edited.message.client_msg_id,
    )


def test_messages_deleted_patches_only_nonzero_unread_counts() -> None:
    """Every recipient shares ids and seqs; only those with unread left get a patch."""
    shared, patches = updates.messages_deleted(10, [7, 8], [3, 4], {1: 0, 2: 5})
    assert ([7, 8], [3, 4]) == (
        list(shared.messages_deleted.message_ids),
        list(shared.messages_deleted.seqs),
    )
    assert {2: 5} == {u: p.messages_deleted.unread_count for u, p in patches.items()}


def test_read_inbox_goes_to_the_reader_with_their_count() -> None:
    """ReadInbox: the watermark shared, the reader's unread count in their patch."""
    shared, patches = updates.read_inbox(10, 42, 1, 3)
    assert (10, 42) == (shared.read_inbox.chat_id, shared.read_inbox.max_seq)
    assert {1: 3} == {u: p.read_inbox.unread_count for u, p in patches.items()}


def test_new_chat_view_of_an_invite_starts_read_up_to_the_last_seq() -> None:
    """An invited member sees the chat read up to its last seq, nothing unread."""
    members = [Member(1, Role.OWNER, 5), Member(2, Role.MEMBER, 9)]
    view = updates.new_chat_view(10, ChatKind.GROUP, "t", 5, 17, members, 17, 12)
    assert (2, 17, 0, 17, 12) == (
        view.member_count, view.last_seq, view.unread_count,
        view.read_inbox_max_seq, view.read_outbox_max_seq,
    )  # fmt: skip
    update = updates.new_chat(view, 1, for_user=0)
    assert (10, 1) == (update.new_chat.chat.id, update.new_chat.added_by_user_id)


def test_member_left_names_the_new_owner() -> None:
    """MemberLeft carries the leaver, the new count and the new owner (0: unchanged)."""
    left = updates.member_left(10, 1, 2, 3).member_left
    assert (10, 1, 2, 3) == (left.chat_id, left.user_id, left.member_count, left.new_owner_user_id)


def test_a_groups_creator_owns_it_and_a_direct_chat_has_no_owner() -> None:
    """A group's first member is its owner, the rest plain members; direct: all members."""
    group = rules.founding_members(ChatKind.GROUP, [5, 6, 7], 9)
    direct = rules.founding_members(ChatKind.DIRECT, [5, 6], 9)
    assert [Role.OWNER, Role.MEMBER, Role.MEMBER] == [m.role for m in group]
    assert [Role.MEMBER, Role.MEMBER] == [m.role for m in direct]
    assert {9} == {m.joined_at_ms for m in group + direct}


def test_invited_users_join_as_plain_members() -> None:
    """An invite adds plain members joined now, in the order given."""
    assert [Member(8, Role.MEMBER, 9), Member(4, Role.MEMBER, 9)] == rules.invited_members(
        [8, 4], 9
    )
