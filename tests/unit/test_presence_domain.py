"""Presence decisions as pure functions of ``now``: no I/O, no clock, no sleeping."""

from __future__ import annotations

from presence_service.domain.presence import (
    Connection,
    ConnectionEvent,
    EventKind,
    Transition,
    apply_events,
    debounce,
    expire,
    is_online,
    offline_deadline,
    to_publish,
)
from presence_service.domain.schedule import DueSet

TTL = 90_000
NOW = 1_000_000


def ev(user: int, kind: EventKind, session: str = "s1", at_ms: int = 0) -> ConnectionEvent:
    return ConnectionEvent(user, session, kind, at_ms)


def test_connect_goes_online() -> None:
    """A first CONNECTED makes the user online, with a deadline one TTL ahead."""
    applied = apply_events({}, "pod", [ev(1, EventKind.CONNECTED)], NOW, TTL)
    assert [Transition(1, True, NOW)] == applied.transitions
    assert NOW + TTL == offline_deadline(applied.users[1])


def test_last_disconnect_goes_offline_with_its_time() -> None:
    """Closing the last connection is an offline transition dated by the event."""
    state = apply_events({}, "pod", [ev(1, EventKind.CONNECTED, at_ms=NOW - 50)], NOW - 10, TTL)
    applied = apply_events(
        state.users, "pod", [ev(1, EventKind.DISCONNECTED, at_ms=NOW - 5)], NOW, TTL
    )
    assert [Transition(1, False, NOW - 5)] == applied.transitions
    assert not is_online(applied.users[1], NOW)


def test_other_session_keeps_online() -> None:
    """With a second live connection, closing one changes nothing."""
    events = [ev(1, EventKind.CONNECTED), ev(1, EventKind.CONNECTED, "s2")]
    state = apply_events({}, "pod", events, NOW, TTL).users
    applied = apply_events(state, "pod", [ev(1, EventKind.DISCONNECTED)], NOW + 1, TTL)
    assert [] == applied.transitions


def test_same_session_on_two_pods_counts_twice() -> None:
    """A device that moved pods stays online when the old pod reports the old close."""
    state = apply_events({}, "pod-a", [ev(1, EventKind.CONNECTED)], NOW, TTL).users
    state = apply_events(state, "pod-b", [ev(1, EventKind.CONNECTED)], NOW + 1, TTL).users
    applied = apply_events(state, "pod-a", [ev(1, EventKind.DISCONNECTED)], NOW + 2, TTL)
    assert ([], True) == (applied.transitions, is_online(applied.users[1], NOW + 2))


def test_delayed_older_event_is_ignored() -> None:
    """An event older than the connection's newest cannot reopen a closed connection."""
    closed = [
        ev(1, EventKind.CONNECTED, at_ms=NOW - 9),
        ev(1, EventKind.DISCONNECTED, at_ms=NOW - 5),
    ]
    state = apply_events({}, "pod", closed, NOW, TTL).users
    applied = apply_events(state, "pod", [ev(1, EventKind.HEARTBEAT, at_ms=NOW - 7)], NOW + 1, TTL)
    assert ([], False) == (applied.transitions, is_online(applied.users[1], NOW + 1))


def test_late_heartbeat_does_not_reopen_a_closed_connection() -> None:
    """A HEARTBEAT newer than the connection's DISCONNECTED leaves the user offline."""
    closed = [
        ev(1, EventKind.CONNECTED, at_ms=NOW - 9),
        ev(1, EventKind.DISCONNECTED, at_ms=NOW - 5),
    ]
    state = apply_events({}, "pod", closed, NOW, TTL).users
    applied = apply_events(state, "pod", [ev(1, EventKind.HEARTBEAT, at_ms=NOW)], NOW + 1, TTL)
    assert ([], False) == (applied.transitions, is_online(applied.users[1], NOW + 1))
    reopened = apply_events(state, "pod", [ev(1, EventKind.CONNECTED)], NOW + 2, TTL)
    assert [Transition(1, True, NOW + 2)] == reopened.transitions, "CONNECTED still reopens"


def test_connect_and_close_in_one_batch_moves_last_seen() -> None:
    """A connection opened and closed within one batch records last-seen, never online."""
    events = [
        ev(1, EventKind.CONNECTED, at_ms=NOW - 3),
        ev(1, EventKind.DISCONNECTED, at_ms=NOW - 2),
    ]
    assert [Transition(1, False, NOW - 2)] == apply_events({}, "pod", events, NOW, TTL).transitions


def test_heartbeat_extends_and_silence_expires() -> None:
    """A heartbeat pushes the deadline; after it, expiry is offline at the last heartbeat."""
    state = apply_events({}, "pod", [ev(1, EventKind.CONNECTED)], NOW, TTL).users
    beat = NOW + 60_000
    state = apply_events(state, "pod", [ev(1, EventKind.HEARTBEAT, at_ms=beat)], beat, TTL).users
    assert [] == expire(state, NOW + TTL + 1).transitions
    lapsed = expire(state, beat + TTL)
    assert [Transition(1, False, beat)] == lapsed.transitions
    assert {} == lapsed.users[1]


def test_unknown_heartbeat_counts_as_connected() -> None:
    """A heartbeat of a connection the server lost track of brings the user back online."""
    applied = apply_events({}, "pod", [ev(1, EventKind.HEARTBEAT)], NOW, TTL)
    assert [Transition(1, True, NOW)] == applied.transitions


def test_lapsed_user_reported_again_is_recorded_offline_first() -> None:
    """A user whose TTL ran out before the sweep gets the missed offline, then online."""
    stale = {1: {("pod", "s1"): Connection(NOW - TTL - 5, NOW - 1, True)}}
    applied = apply_events(stale, "pod", [ev(1, EventKind.HEARTBEAT)], NOW, TTL)
    assert [Transition(1, False, NOW - TTL - 5), Transition(1, True, NOW)] == applied.transitions


def test_debounce_window_opens_once() -> None:
    """The first change opens the window; later changes inside it do not move it."""
    first = debounce({}, [Transition(1, False, NOW)], NOW, 2000)
    later = debounce(first, [Transition(1, True, NOW + 500)], NOW + 500, 2000)
    assert {1: NOW + 2000} == later


def test_publish_only_what_differs_from_last_told() -> None:
    """Flaps back to the told state publish nothing; a never-told user counts as offline."""
    published = {1: True, 2: True}
    online = {1: True, 2: False, 3: False, 4: True}
    assert [2, 4] == to_publish(published, online)


def test_due_set_replaces_and_pops_in_order() -> None:
    """Re-adding a key replaces its time (or keeps the earlier); due keys pop in order."""
    due: DueSet[int] = DueSet()
    due.add(1, 50)
    due.add(2, 10)
    due.add(1, 30)
    due.add(2, 40, keep_earlier=True)
    due.add(3, 99)
    due.discard(3)
    assert 10 == due.next_due()
    assert ([2, 1], None) == (due.pop_due(60), due.next_due())
