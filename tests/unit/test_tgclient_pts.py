"""The client's pts rule: apply in order, drop duplicates, hold updates past a gap."""

from __future__ import annotations

from minitg.chat.v1 import updates_pb2

from tgclient.pts import PtsState


def _u(pts: int, count: int = 1) -> updates_pb2.Update:
    return updates_pb2.Update(pts=pts, pts_count=count)


def _pts(updates: list[updates_pb2.Update]) -> list[int]:
    return [u.pts for u in updates]


def test_in_order_updates_apply() -> None:
    """local + count == pts: applied, position moves."""
    state = PtsState(10)
    assert ([11], False) == (_pts(state.offer(_u(11))[0]), False)
    assert 11 == state.pts


def test_duplicates_are_dropped() -> None:
    """An update at or below the position is one we already have."""
    state = PtsState(10)
    assert ([], False) == state.offer(_u(10))
    assert ([], False) == state.offer(_u(7))


def test_gap_holds_then_releases_in_order() -> None:
    """Past a gap updates are held; filling the gap releases them, in order, once."""
    state = PtsState(10)
    assert ([], True) == state.offer(_u(13))
    assert ([], True) == state.offer(_u(12))
    applied, gap = state.offer(_u(11))
    assert ([11, 12, 13], False) == (_pts(applied), gap)
    assert (13, {}) == (state.pts, state.held)


def test_multi_entry_updates_and_own_replies() -> None:
    """pts_count > 1 and replies standing for our own update both advance the position."""
    state = PtsState(5)
    assert [7] == _pts(state.offer(_u(7, count=2))[0])
    assert ([], False) == state.advance(8, 1)
    assert 8 == state.pts
    assert ([], True) == state.advance(10, 1)  # a reply past a gap: fetch the difference


def test_non_log_updates_always_apply() -> None:
    """pts == 0 marks an update outside the log; it applies without moving the position."""
    state = PtsState(3)
    assert [0] == _pts(state.offer(_u(0, count=0))[0])
    assert 3 == state.pts
