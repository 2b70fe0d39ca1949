"""Typing coalescing and ack batching decisions: pure, no I/O."""

from __future__ import annotations

from presence_service.domain.acks import AckBatch, ReceiptLog, Watermark
from presence_service.domain.typing_marks import TypingMark, push_cancel, push_typing, recipients

TTL = 6000


def test_typing_pushed_then_coalesced_then_renewed() -> None:
    """A first TYPING is pushed, a repeat within half the TTL is not, a later one is."""
    mark = TypingMark(1000, (2,))
    assert (True, False, True) == (
        push_typing(None, 1000, TTL),
        push_typing(mark, 3999, TTL),
        push_typing(mark, 4000, TTL),
    )


def test_cancel_pushed_only_while_indicator_may_show() -> None:
    """A stop is pushed while receivers may still show typing, never without a push."""
    mark = TypingMark(1000, (2,))
    assert (True, False, False) == (
        push_cancel(mark, 6999, TTL),
        push_cancel(mark, 7000, TTL),
        push_cancel(None, 1000, TTL),
    )


def test_typing_recipients_exclude_typist() -> None:
    """Every member but the typist, once each."""
    assert (2, 3) == recipients([3, 1, 2, 3], 1)


def test_ack_batch_keeps_maximum_per_session_and_chat() -> None:
    """Acks merge by maximum; zero values add nothing; the newest caller is kept."""
    batch: AckBatch[str] = AckBatch()
    batch.add("s1", 7, 5, [(100, 3)], "t1")
    batch.add("s1", 7, 4, [(100, 9), (101, 0)], "t2")
    batch.add("s2", 7, 0, [(100, 2)], "t3")
    assert {"s1": Watermark(7, 5)} == batch.watermarks
    receipt = batch.receipts[(100, 7)]
    assert (9, "t2", [(100, 7)]) == (receipt.max_seq, receipt.caller, list(batch.receipts))


def test_receipt_log_never_goes_backwards() -> None:
    """Only a seq above the last announced one is announced; old entries are forgotten."""
    log = ReceiptLog(capacity=2)
    log.record(1, 7, 5)
    assert (False, False, True) == (
        log.advances(1, 7, 5),
        log.advances(1, 7, 4),
        log.advances(1, 7, 6),
    )
    log.record(2, 7, 1)
    log.record(3, 7, 1)
    assert log.advances(1, 7, 1)
