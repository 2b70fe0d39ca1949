"""In-process ``ports.HotState`` for embedded mode (``memory://``) and fast tests.

Same semantics as the Redis adapter, including its observable quirks (a counter reads
back as its decimal bytes, ``b"3"``), with time taken from an injectable clock (monotonic
seconds) so tests can move it forward instead of sleeping.

The data lives in a ``MemoryStore``; each ``MemoryHotState`` is one namespaced view on
it, as each service's Redis client is a prefixed view on one Redis. Expired entries are
dropped when touched, plus a full sweep every few thousand writes so keys that are never
read again cannot accumulate.
"""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from svckit.ports import RateDecision

Clock = Callable[[], float]
_SWEEP_EVERY_WRITES = 4096
_EPSILON = 1e-9  # seconds


@dataclass(slots=True)
class _Entry:
    """A value, a counter (bytes too), an expiring set or a rate bucket's TAT."""

    value: bytes | dict[str, float] | float
    expires_at: float | None = None


class MemoryStore:
    """The key space shared by the namespaced views of one process."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._writes = 0

    def get(self, key: str) -> _Entry | None:
        """The live entry at ``key``; an expired one is removed and reads as absent."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= self.clock():
            del self._entries[key]
            return None
        return entry

    def put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._writes += 1
        if self._writes % _SWEEP_EVERY_WRITES == 0:
            self._sweep()

    def pop(self, key: str) -> _Entry | None:
        entry = self.get(key)
        self._entries.pop(key, None)
        return entry

    def _sweep(self) -> None:
        now = self.clock()
        expired = [
            k for k, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now
        ]
        for key in expired:
            del self._entries[key]


def _deadline(now: float, ttl: float) -> float:
    # Millisecond resolution, like Redis, so both adapters round a TTL the same way.
    return now + max(1, round(ttl * 1000)) / 1000


def _expiry(now: float, ttl: float | None) -> float | None:
    return None if ttl is None else _deadline(now, ttl)


class MemoryHotState:
    """A ``ports.HotState`` view of a ``MemoryStore`` (a private one by default)."""

    def __init__(
        self, namespace: str = "", store: MemoryStore | None = None, *, clock: Clock | None = None
    ) -> None:
        if store is not None and clock is not None:
            raise ValueError("pass a clock or a store (which has its own clock), not both")
        self._store = store if store is not None else MemoryStore(clock or time.monotonic)
        self.namespace = namespace
        self._closed = False

    def _key(self, key: str) -> str:
        return self.namespace + key

    def _now(self) -> float:
        return self._store.clock()

    def _bytes_at(self, key: str) -> bytes | None:
        entry = self._store.get(self._key(key))
        if entry is None:
            return None
        if not isinstance(entry.value, bytes):
            raise TypeError(f"key {key!r} does not hold a value")
        return entry.value

    async def get(self, key: str) -> bytes | None:
        return self._bytes_at(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._bytes_at(key) for key in keys]

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> bool:
        if only_if_absent and self._store.get(self._key(key)) is not None:
            return False
        self._store.put(self._key(key), _Entry(bytes(value), _expiry(self._now(), ttl)))
        return True

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None = None) -> None:
        expires_at = _expiry(self._now(), ttl)
        for key, value in items:
            self._store.put(self._key(key), _Entry(bytes(value), expires_at))

    async def delete(self, *keys: str) -> int:
        return sum(self._store.pop(self._key(key)) is not None for key in keys)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        entry = self._store.get(self._key(key))
        if entry is None:
            entry = _Entry(b"0", _expiry(self._now(), ttl))
        if not isinstance(entry.value, bytes):
            raise TypeError(f"key {key!r} does not hold a counter")
        value = int(entry.value) + amount  # ValueError for a non-integer, like Redis
        entry.value = str(value).encode()
        self._store.put(self._key(key), entry)
        return value

    def _members_entry(self, key: str) -> _Entry | None:
        entry = self._store.get(self._key(key))
        if entry is not None and not isinstance(entry.value, dict):
            raise TypeError(f"key {key!r} does not hold an expiring set")
        return entry

    async def expiring_add(self, key: str, member: str, ttl: float) -> None:
        now = self._now()
        entry = self._members_entry(key) or _Entry({})
        assert isinstance(entry.value, dict)
        entry.value[member] = _deadline(now, ttl)
        entry.expires_at = max(entry.value.values())
        self._store.put(self._key(key), entry)

    async def expiring_add_many(self, pairs: Sequence[tuple[str, str]], ttl: float) -> None:
        for key, member in pairs:
            await self.expiring_add(key, member, ttl)

    async def expiring_remove(self, key: str, member: str) -> None:
        entry = self._members_entry(key)
        if entry is not None:
            assert isinstance(entry.value, dict)
            entry.value.pop(member, None)
            if not entry.value:
                self._store.pop(self._key(key))

    async def expiring_members(self, key: str) -> builtins.set[str]:
        entry = self._members_entry(key)
        if entry is None:
            return set()
        assert isinstance(entry.value, dict)
        now = self._now()
        for member in [m for m, expires_at in entry.value.items() if expires_at <= now]:
            del entry.value[member]
        return set(entry.value)

    async def expiring_members_many(self, keys: Sequence[str]) -> list[builtins.set[str]]:
        return [await self.expiring_members(key) for key in keys]

    async def rate_hit(self, key: str, limit: int, window: float) -> RateDecision:
        """GCRA, the same arithmetic as the Redis script (see redis_state._RATE_HIT)."""
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs limit >= 1 and window > 0")
        now = self._now()
        interval = window / limit
        entry = self._store.get(self._key(key))
        tat = now if entry is None or not isinstance(entry.value, float) else entry.value
        new_tat = max(tat, now) + interval
        allow_at = new_tat - window
        # Tolerance: limit * (window / limit) may exceed window by a rounding error, which
        # would refuse the last request of a full burst.
        if allow_at - now > _EPSILON:
            return RateDecision(allowed=False, remaining=0, retry_after=allow_at - now)
        self._store.put(self._key(key), _Entry(new_tat, new_tat))
        remaining = math.floor((window - (new_tat - now)) / interval + 1e-9)
        return RateDecision(allowed=True, remaining=remaining, retry_after=0.0)

    async def rate_hit_many(self, hits: Sequence[tuple[str, int, float]]) -> list[RateDecision]:
        return [await self.rate_hit(key, limit, window) for key, limit, window in hits]

    async def ping(self) -> bool:
        """True until closed."""
        return not self._closed

    async def close(self) -> None:
        """Nothing to release; the store belongs to whoever created it."""
        self._closed = True
