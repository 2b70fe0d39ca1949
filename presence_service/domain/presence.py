"""Online status as pure functions of ``now`` (synapse's ``handle_update``/``handle_timeout``).

A user's state is the set of their connections, keyed by (gateway pod, session): a
connection is live while it is open and its time-to-live (refreshed by every CONNECTED or
HEARTBEAT) has not run out. A user is online while at least one connection is live, so a
pod that dies without reporting takes its users offline once their TTL runs out.

A closed connection is remembered (a tombstone) until its TTL ends, so a delayed batch
with an older ``at_ms`` cannot reopen it, nor can a HEARTBEAT of any age (only CONNECTED
opens a connection again): a gateway sweep that raced the socket's close would otherwise
keep the user online until the TTL ran out. ``at_ms`` is the gateway's clock and only orders
events of one connection and dates last-seen; expiry runs on the server's clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class EventKind(enum.Enum):
    """What happened to one connection."""

    CONNECTED = 1
    HEARTBEAT = 2
    DISCONNECTED = 3


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """One event of a gateway pod's report."""

    user_id: int
    session_id: str
    kind: EventKind
    at_ms: int  # gateway clock; 0 means "now"


@dataclass(frozen=True, slots=True)
class Connection:
    """What the server knows about one (pod, session) connection."""

    at_ms: int  # the newest applied event's time
    expires_at_ms: int  # server clock: live until then if open, forgotten then if closed
    open: bool


ConnKey = tuple[str, str]  # (pod_id, session_id)
Connections = Mapping[ConnKey, Connection]


@dataclass(frozen=True, slots=True)
class Transition:
    """A user went online or offline; ``at_ms`` is last-seen for an offline one."""

    user_id: int
    online: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class Applied:
    """The new state of every touched user (empty: nothing left to keep) and what changed."""

    users: dict[int, dict[ConnKey, Connection]]
    transitions: list[Transition]


def is_online(conns: Connections, now_ms: int) -> bool:
    """True while at least one connection is open and within its time-to-live."""
    return any(c.open and c.expires_at_ms > now_ms for c in conns.values())


def last_seen(conns: Connections) -> int:
    """The newest event time among the connections (0 when there are none)."""
    return max((c.at_ms for c in conns.values()), default=0)


def offline_deadline(conns: Connections) -> int | None:
    """When the user goes offline if no further event arrives; None when already offline."""
    return max((c.expires_at_ms for c in conns.values() if c.open), default=None)


def _lapsed(conns: Connections, now_ms: int) -> bool:
    """Open connections whose TTL ran out and no live one: offline nobody recorded yet."""
    return any(c.open for c in conns.values()) and not is_online(conns, now_ms)


def _pruned(conns: Connections, now_ms: int) -> dict[ConnKey, Connection]:
    return {k: c for k, c in conns.items() if c.expires_at_ms > now_ms}


def apply_events(
    state: Mapping[int, Connections],
    pod_id: str,
    events: Sequence[ConnectionEvent],
    now_ms: int,
    ttl_ms: int,
) -> Applied:
    """Apply one pod's events in order to the users' states; report net transitions.

    ``state`` holds the stored connections of (at least) every user the events name.
    A user who connects and disconnects within the batch ends with an offline transition
    (their last-seen moves) although they were never reported online.
    """
    users: dict[int, dict[ConnKey, Connection]] = {}
    transitions: list[Transition] = []
    was_online: dict[int, bool] = {}
    active: set[int] = set()
    for event in events:
        conns = users.get(event.user_id)
        if conns is None:
            stored = state.get(event.user_id, {})
            if _lapsed(stored, now_ms):
                transitions.append(Transition(event.user_id, False, last_seen(stored)))
            conns = users[event.user_id] = _pruned(stored, now_ms)
            was_online[event.user_id] = is_online(conns, now_ms)
        key = (pod_id, event.session_id)
        at_ms = min(event.at_ms or now_ms, now_ms)
        known = conns.get(key)
        if known is not None and at_ms < known.at_ms:
            continue  # older than what we have for this connection: a delayed batch
        if event.kind is EventKind.HEARTBEAT and known is not None and not known.open:
            continue  # only CONNECTED reopens a closed connection: a late sweep's heartbeat
        opened = event.kind is not EventKind.DISCONNECTED
        conns[key] = Connection(at_ms, now_ms + ttl_ms, opened)
        if opened:
            active.add(event.user_id)
    for user_id, conns in users.items():
        online = is_online(conns, now_ms)
        if online and not was_online[user_id]:
            transitions.append(Transition(user_id, True, now_ms))
        elif not online and (was_online[user_id] or user_id in active):
            transitions.append(Transition(user_id, False, last_seen(conns)))
    return Applied(users, transitions)


def expire(state: Mapping[int, Connections], now_ms: int) -> Applied:
    """Drop connections whose TTL ran out; users left with no live one go offline.

    Last-seen of a user who lapsed is their newest event (their last heartbeat), not the
    moment the server noticed.
    """
    users: dict[int, dict[ConnKey, Connection]] = {}
    transitions: list[Transition] = []
    for user_id, conns in state.items():
        if _lapsed(conns, now_ms):
            transitions.append(Transition(user_id, False, last_seen(conns)))
        users[user_id] = _pruned(conns, now_ms)
    return Applied(users, transitions)


def debounce(
    pending: Mapping[int, int], transitions: Iterable[Transition], now_ms: int, window_ms: int
) -> dict[int, int]:
    """User -> when to decide whether to publish: the first change opens a window of
    ``window_ms``, later changes inside it do not move it. At that time the user's state
    then is compared with the last published one (see ``to_publish``)."""
    due = dict(pending)
    for transition in transitions:
        due.setdefault(transition.user_id, now_ms + window_ms)
    return due


def to_publish(published: Mapping[int, bool], online: Mapping[int, bool]) -> list[int]:
    """The users whose state differs from what their peers were last told.

    A user never published counts as offline (everyone starts offline), so a connection
    that flaps on and off within the window publishes nothing, and so does a user who goes
    offline and comes back within it.
    """
    return [u for u, now_online in online.items() if published.get(u, False) != now_online]
