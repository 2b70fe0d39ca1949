"""A set of keys with due times, for the presence timers (no I/O, time passed in)."""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DueSet(Generic[K]):
    """Key -> due time (ms). Re-adding a key replaces its due time (or keeps the earlier
    one with ``keep_earlier``); ``pop_due`` returns and removes the keys that are due.

    A heap with lazy deletion: a replaced entry stays in the heap and is skipped when it
    surfaces, so updating 10,000 keys per report costs O(log n) each.
    """

    def __init__(self) -> None:
        self._due: dict[K, int] = {}
        self._heap: list[tuple[int, int, K]] = []
        self._seq = 0  # tie-breaker: keys need not be orderable

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def add(self, key: K, due_ms: int, *, keep_earlier: bool = False) -> None:
        """Schedule ``key`` at ``due_ms``."""
        current = self._due.get(key)
        if current is not None and (current == due_ms or (keep_earlier and current < due_ms)):
            return
        self._due[key] = due_ms
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, key))

    def discard(self, key: K) -> None:
        """Unschedule ``key`` (a no-op when absent)."""
        self._due.pop(key, None)

    def next_due(self) -> int | None:
        """The earliest due time, or None when empty."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> list[K]:
        """Remove and return every key due at or before ``now_ms``, earliest first."""
        due: list[K] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now_ms:
                return due
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            due.append(key)

    def _drop_stale(self) -> None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
