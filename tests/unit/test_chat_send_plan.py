"""The send batch's decisions as pure functions: repeats, seqs, unread counts, patches, pts."""

from __future__ import annotations

from chat_service.domain.errors import ChatNotFound, ClientMsgIdReused
from chat_service.domain.model import Body, BodyKind, Message, Outgoing, SendItem, SendResult
from chat_service.domain.pts import assign_pts, pts_counts
from chat_service.domain.send_plan import (
    ChatBatch,
    SenderRead,
    StoredSend,
    message_order,
    new_message_updates,
    plan_batch,
    sender_reads,
)

HI, BYE = Body(BodyKind.TEXT, text="hi"), Body(BodyKind.TEXT, text="bye")


def out(sender: int, chat_id: int, cmid: str, body: Body = HI) -> Outgoing:
    return Outgoing(sender, f"s{sender}", SendItem(chat_id, cmid, body))


def locked(
    chat_id: int, indexes: list[int], last_seq: int, prior: dict[int, int], after: dict[int, int]
) -> ChatBatch:
    """A chat batch as the transaction leaves it after the lock and the unread step."""
    batch = ChatBatch(chat_id, list(indexes), last_seq=last_seq, date_ms=5)
    batch.members, batch.prior, batch.unread = sorted(prior), dict(prior), dict(after)
    return batch


def test_fresh_items_group_by_chat_in_request_order() -> None:
    """Fresh items are grouped per chat, keeping their batch indexes in request order."""
    sends = [out(1, 10, "a"), out(2, 20, "b"), out(1, 10, "c")]
    plan = plan_batch(sends, {})
    assert {10: [0, 2], 20: [1]} == {c: b.indexes for c, b in plan.chats.items()}
    assert [None, None, None] == plan.outcomes


def test_a_retry_of_a_stored_send_answers_with_its_result() -> None:
    """A stored (sender, client_msg_id) with the same chat and body answers with its result."""
    stored = {(1, "a"): StoredSend(10, HI, SendResult(7, 3, 100, 9))}
    plan = plan_batch([out(1, 10, "a")], stored)
    assert [SendResult(7, 3, 100, 9)] == plan.results()
    assert {} == plan.chats


def test_a_deleted_stored_send_matches_on_its_chat_alone() -> None:
    """A deleted message's body is erased: a repeat into its chat is still a retry."""
    stored = {(1, "a"): StoredSend(10, None, SendResult(7, 3, 100, 9))}
    assert [SendResult(7, 3, 100, 9)] == plan_batch([out(1, 10, "a", BYE)], stored).results()


def test_a_stored_id_reused_for_another_body_or_chat_is_refused() -> None:
    """The same client_msg_id with another body or chat is CLIENT_MSG_ID_REUSED."""
    stored = {(1, "a"): StoredSend(10, HI, SendResult(7, 3, 100, 9))}
    for send in (out(1, 10, "a", BYE), out(1, 11, "a")):
        (outcome,) = plan_batch([send], stored).results()
        assert isinstance(outcome, ClientMsgIdReused)


def test_twins_in_one_batch_share_the_first_outcome() -> None:
    """A repeat within the batch answers like its first; a mismatching one is refused."""
    plan = plan_batch([out(1, 10, "a"), out(1, 10, "a"), out(1, 10, "a", BYE)], {})
    assert {1: 0} == plan.twins and [0] == plan.chats[10].indexes
    plan.outcomes[0] = SendResult(7, 3, 100, 9)
    first, twin, reused = plan.results()
    assert SendResult(7, 3, 100, 9) == first == twin
    assert isinstance(reused, ClientMsgIdReused)


def test_items_left_without_an_outcome_are_chat_not_found() -> None:
    """An item whose chat was not locked for its sender ends as CHAT_NOT_FOUND."""
    (outcome,) = plan_batch([out(1, 10, "a")], {}).results()
    assert isinstance(outcome, ChatNotFound)


def test_non_members_items_are_dropped_and_their_seqs_given_back() -> None:
    """Dropping a non-member's items lowers last_seq by their count: seqs stay gapless."""
    sends = [out(1, 10, "a"), out(9, 10, "b"), out(1, 10, "c")]
    batch = locked(10, [0, 1, 2], 13, {1: 0, 2: 0}, {})
    assert 1 == batch.drop_non_members(sends)
    assert ([0, 2], 12, 11) == (batch.indexes, batch.last_seq, batch.first_seq)
    assert {1: [0, 1]} == batch.own_positions(sends)
    assert 0 == batch.drop_non_members(sends)


def test_messages_are_ordered_by_request_across_chats() -> None:
    """Message ids and pts follow request order, each message keeping its chat's seq."""
    a, b = locked(10, [0, 2], 6, {}, {}), locked(20, [1], 9, {}, {})
    assert [(a, 0, 5), (b, 1, 9), (a, 2, 6)] == message_order([b, a])


def test_a_senders_read_mark_moves_to_their_last_message() -> None:
    """A sender's watermark is their last message of the batch; unread counts what follows."""
    sends = [out(1, 10, "a"), out(2, 10, "b"), out(1, 10, "c"), out(2, 10, "d")]
    batch = locked(10, [0, 1, 2, 3], 14, {1: 5, 2: 0}, {})
    assert [SenderRead(10, 1, 1, 13), SenderRead(10, 2, 0, 14)] == sender_reads([batch], sends)


def test_each_member_gets_their_unread_count_right_after_each_message() -> None:
    """Per message: others' unread counts as they stand after it, senders counted from
    their own last message; equal counts share one patch; the sender gets client_msg_id."""
    # Chat 10 with members 1, 2, 3; 1 sends at positions 0 and 2, 2 sends at position 1.
    sends = [out(1, 10, "a"), out(2, 10, "b"), out(1, 10, "c")]
    batch = locked(10, [0, 1, 2], 23, {1: 4, 2: 6, 3: 8}, {1: 0, 2: 1, 3: 11})
    counts = []
    for position in range(3):
        sender = sends[batch.indexes[position]]
        message = Message(100 + position, 10, 21 + position, sender.sender_id, 5, HI,
                          client_msg_id=sender.item.client_msg_id)  # fmt: skip
        shared, patches = new_message_updates(batch, sends, message)
        assert "" == shared.new_message.message.client_msg_id
        assert 0 == shared.new_message.unread_count
        assert (
            sender.item.client_msg_id == patches[sender.sender_id].new_message.message.client_msg_id
        )
        counts.append(
            {u: p.new_message.unread_count for u, p in patches.items() if u != sender.sender_id}
        )
    # After message 0 (by 1): 2 had 6 and sends later -> 7; 3 ends at 11 -> 9.
    # After message 1 (by 2): 1 read up to 0 -> 1; 3 -> 10.
    # After message 2 (by 1): 2 read up to 1 -> 1; 3 -> 11 (shared with nobody).
    assert [{2: 7, 3: 9}, {1: 1, 3: 10}, {2: 1, 3: 11}] == counts


def test_members_with_equal_counts_share_one_patch_and_zero_gets_none() -> None:
    """Members with the same unread count share a patch object; a zero count has no patch."""
    sends = [out(1, 10, "a")]
    batch = locked(10, [0], 21, {1: 0, 2: 3, 3: 3, 4: 0}, {1: 0, 2: 4, 3: 4, 4: 0})
    batch.unread[4] = 0  # e.g. every message it could count was hidden
    message = Message(100, 10, 21, 1, 5, HI, client_msg_id="a")
    _, patches = new_message_updates(batch, sends, message)
    assert patches[2] is patches[3]
    assert 4 == patches[2].new_message.unread_count
    assert 4 not in patches


def test_pts_are_gapless_per_recipient_in_update_order() -> None:
    """Each recipient's pts run consecutively through the updates, ending at their counter."""
    updates = [(1, 2), (2,), (1, 2, 3)]
    assert {1: 2, 2: 3, 3: 1} == pts_counts(updates)
    assert [{1: 9, 2: 18}, {2: 19}, {1: 10, 2: 20, 3: 5}] == assign_pts(
        updates, {1: 10, 2: 20, 3: 5}
    )
