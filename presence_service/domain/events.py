"""The ephemeral events the presence service pushes, and to whom."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A user came online or went offline (``last_seen_at_ms`` 0 while online)."""

    user_id: int
    online: bool
    last_seen_at_ms: int


@dataclass(frozen=True, slots=True)
class TypingEvent:
    """A member started (``expires_in_ms`` > 0) or stopped (0) typing in a chat."""

    chat_id: int
    user_id: int
    expires_in_ms: int


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """A member's devices received a chat's messages up to ``max_seq``."""

    chat_id: int
    max_seq: int
    by_user_id: int


Event = PresenceEvent | TypingEvent | DeliveredEvent


@dataclass(frozen=True, slots=True)
class Push:
    """One event for some users; only those with a live connection will get it."""

    event: Event
    recipients: tuple[int, ...]
