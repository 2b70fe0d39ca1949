"""tgclient's pts rule (docs/PROTOCOL.md section 4): apply in order, drop duplicates, hold
what follows a gap, and count in our own replies that arrive ahead of a gap."""

from __future__ import annotations

from minitg.chat.v1 import updates_pb2

from tgclient.pts import PtsState


def update(pts: int, count: int = 1) -> updates_pb2.Update:
    return updates_pb2.Update(pts=pts, pts_count=count)


def test_in_order_updates_apply_and_duplicates_drop() -> None:
    state = PtsState(3)
    assert ([update(4)], False) == state.offer(update(4))
    assert ([], False) == state.offer(update(4))
    assert ([], False) == state.offer(update(2))
    assert 4 == state.pts


def test_updates_behind_a_gap_are_held_then_released_in_order() -> None:
    state = PtsState(3)
    assert ([], True) == state.offer(update(6))
    assert ([], True) == state.offer(update(5))
    assert state.pending
    ready, gap = state.offer(update(4))
    assert ([4, 5, 6], False) == ([u.pts for u in ready], gap)
    assert (6, False) == (state.pts, state.pending)


def test_our_reply_ahead_of_a_gap_counts_once_the_gap_closes() -> None:
    """A peer's update (pts 4) is still on its way when our send's result (pts 5) arrives."""
    state = PtsState(3)
    assert ([], True) == state.advance(5, 1)
    assert (3, True) == (state.pts, state.pending)
    ready, gap = state.offer(update(4))
    assert ([4], False) == ([u.pts for u in ready], gap)
    assert (5, False) == (state.pts, state.pending)
    ready, _ = state.offer(update(6))  # the next update fits without a catch-up
    assert [6] == [u.pts for u in ready]


def test_a_catch_up_past_held_entries_drops_them() -> None:
    state = PtsState(3)
    state.offer(update(7))
    state.advance(9, 2)
    state.pts = 9  # what GetDifference reported
    assert ([], False) == (state.release(), state.pending)
    state.advance(12, 1)
    state.reset(20)
    assert (20, False) == (state.pts, state.pending)
