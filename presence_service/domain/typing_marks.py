"""Typing decisions as pure functions of ``now``.

A typist's indicator is shown by receivers for the typing TTL (6 s by default) after each
push. Clients repeat TYPING about every 5 s while typing continues; a repeat is pushed
again only once half the TTL has passed since the last push, so a client that repeats on
every keystroke costs one push per 3 s while the receivers' indicator never lapses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TypingMark:
    """The last TYPING push of one user in one chat, kept for the typing TTL."""

    pushed_at_ms: int
    recipients: tuple[int, ...]  # who got it, and so who must get the cancel


def coalesce_ms(ttl_ms: int) -> int:
    """Repeats within this long after a push are not pushed again."""
    return ttl_ms // 2


def push_typing(mark: TypingMark | None, now_ms: int, ttl_ms: int) -> bool:
    """Whether a TYPING now must be pushed (not a repeat inside the coalescing window)."""
    return mark is None or now_ms - mark.pushed_at_ms >= coalesce_ms(ttl_ms)


def push_cancel(mark: TypingMark | None, now_ms: int, ttl_ms: int) -> bool:
    """Whether a stop must be pushed: only while receivers may still show the indicator."""
    return mark is not None and now_ms - mark.pushed_at_ms < ttl_ms


def recipients(member_ids: tuple[int, ...] | list[int], typist: int) -> tuple[int, ...]:
    """The chat's members other than the typist (their other devices included nowhere)."""
    return tuple(sorted({m for m in member_ids if m != typist}))
