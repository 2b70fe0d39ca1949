"""The chat service's pure rules: validation, membership, ownership, read marks, deletes."""

from __future__ import annotations

import pytest

from chat_service.domain import rules
from chat_service.domain.errors import ChatFull
from chat_service.domain.model import Body, BodyKind, ChatKind, Member, Role
from svckit.errors import InvalidField, PermissionDenied


def field_of(exc: pytest.ExceptionInfo[InvalidField]) -> str:
    return exc.value.metadata["field"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (Body(BodyKind.TEXT, text=""), "body.text"),
        (Body(BodyKind.TEXT, text=" \n\t"), "body.text"),
        (Body(BodyKind.TEXT, text="x" * 11), "body.text"),
        (Body(BodyKind.TEXT, text="\ud800"), "body.text"),
        (Body(BodyKind.ENCRYPTED, ciphertext=b""), "body.encrypted.ciphertext"),
        (Body(BodyKind.ENCRYPTED, ciphertext=b"x" * 32769), "body.encrypted.ciphertext"),
        (Body(BodyKind.ENCRYPTED, header=b"h" * 1025, ciphertext=b"x"), "body.encrypted.header"),
        (None, "body"),
    ],
)
def test_bad_bodies_name_their_field(body: Body | None, field: str) -> None:
    """Each broken body limit is INVALID_FIELD naming the exact field."""
    with pytest.raises(InvalidField) as exc:
        rules.validate_body(body, "body", max_text_chars=10)
    assert field == field_of(exc)


def test_good_bodies_pass_unchanged() -> None:
    """Text at the limit and a minimal encrypted body are accepted as sent."""
    text = Body(BodyKind.TEXT, text="é" * 10)
    sealed = Body(BodyKind.ENCRYPTED, ciphertext=b"x")
    assert text == rules.validate_body(text, "body", max_text_chars=10)
    assert sealed == rules.validate_body(sealed, "body", max_text_chars=10)


@pytest.mark.parametrize("value", ["", "x" * 65, "has space", "tab\t", "ünicode"])
def test_bad_idempotency_ids_are_rejected(value: str) -> None:
    """client_msg_id must be 1 to 64 printable ASCII characters without spaces."""
    with pytest.raises(InvalidField):
        rules.validate_idempotency_id(value, "client_msg_id", required=True)


def test_title_is_trimmed_and_bounded() -> None:
    """Titles are trimmed; empty or longer than 128 characters is INVALID_FIELD."""
    assert "Team" == rules.normalize_title("  Team \n")
    for bad in ("   ", "x" * 129):
        with pytest.raises(InvalidField):
            rules.normalize_title(bad)


def test_direct_key_ignores_order() -> None:
    """Both users of a pair get the same direct chat key."""
    assert "3:7" == rules.direct_key(7, 3) == rules.direct_key(3, 7)


def test_initial_members_dedupe_and_cap() -> None:
    """The caller comes first, duplicates and the caller's own id go, the cap counts the caller."""
    assert [1, 2, 3] == rules.initial_group_members(1, [2, 1, 3, 2], 3)
    with pytest.raises(ChatFull):
        rules.initial_group_members(1, [2, 3, 4], 3)


def test_invite_skips_members_and_checks_cap() -> None:
    """Only non-members are added, in request order; the cap counts current members."""
    assert [4, 3] == rules.ids_to_invite([4, 2, 3, 4], [1, 2], 4)
    assert [] == rules.ids_to_invite([1, 2], [1, 2], 2)
    with pytest.raises(ChatFull):
        rules.ids_to_invite([3, 4], [1, 2], 3)
    with pytest.raises(InvalidField):
        rules.ids_to_invite([], [1], 3)


def test_next_owner_prefers_oldest_admin_then_oldest_member() -> None:
    """Ownership passes to the longest-standing admin, else the longest-standing member."""
    members = [Member(5, Role.MEMBER, 10), Member(6, Role.ADMIN, 30), Member(7, Role.ADMIN, 20)]
    assert 7 == rules.next_owner(members)
    assert 5 == rules.next_owner([m for m in members if m.role is Role.MEMBER])
    assert 0 == rules.next_owner([])


def test_read_target_clamps_and_never_goes_back() -> None:
    """A read moves to min(max_seq, last_seq) and only forwards; max_seq below 1 is invalid."""
    assert 5 == rules.read_target(9, 2, 5)
    assert 0 == rules.read_target(2, 2, 5)
    assert 0 == rules.read_target(1, 2, 5)
    with pytest.raises(InvalidField):
        rules.read_target(0, 0, 5)


def test_read_outbox_goes_to_members_whose_mark_rises() -> None:
    """ReadOutbox goes to each other member whose highest other-member watermark rises."""
    watermarks = {1: 0, 2: 8, 3: 5}
    assert [2, 3] == rules.read_outbox_recipients(watermarks, 1, 9)
    assert [2] == rules.read_outbox_recipients(watermarks, 1, 6)
    assert [] == rules.read_outbox_recipients(watermarks, 1, 5)
    assert 8 == rules.read_outbox_max(watermarks, 1)


def test_group_fingerprint_ignores_member_order() -> None:
    """A retried CreateChat with members in another order is the same request."""
    assert rules.group_fingerprint("t", [1, 2, 3]) == rules.group_fingerprint("t", [3, 2, 1, 2])
    assert rules.group_fingerprint("t", [1, 2]) != rules.group_fingerprint("u", [1, 2])


@pytest.mark.parametrize(
    ("kind", "role", "senders", "allowed"),
    [
        (ChatKind.DIRECT, Role.MEMBER, [1, 1], True),
        (ChatKind.DIRECT, Role.MEMBER, [1, 2], False),
        (ChatKind.GROUP, Role.MEMBER, [2], False),
        (ChatKind.GROUP, Role.ADMIN, [2, 3], True),
        (ChatKind.GROUP, Role.OWNER, [2], True),
    ],
)
def test_delete_for_everyone_needs_author_or_group_admin(
    kind: ChatKind, role: Role, senders: list[int], allowed: bool
) -> None:
    """Own messages always; others' only for a group's owner or admins."""
    try:
        rules.check_delete_for_everyone(1, kind, role, senders)
    except PermissionDenied:
        assert not allowed
    else:
        assert allowed


def test_message_ids_to_delete_dedupes_and_bounds() -> None:
    """Ids are deduplicated in order; none or more than 100 are INVALID_FIELD."""
    assert [3, 1] == rules.message_ids_to_delete([3, 1, 3])
    for bad in ([], list(range(101))):
        with pytest.raises(InvalidField) as info:
            rules.message_ids_to_delete(bad)
        assert "message_ids" == field_of(info)
