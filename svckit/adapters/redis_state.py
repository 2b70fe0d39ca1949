"""Redis ``ports.HotState`` (redis.asyncio), for the distributed deployment.

An unreachable Redis raises ``HotStateUnavailable`` (a ``svckit.errors.Unavailable``) from
every operation, so a request that needs it answers UNAVAILABLE / 503, never INTERNAL.

Every key is prefixed with the namespace given to the constructor ("minitg:auth:"), which
is how services share one Redis without colliding. Whatever needs a notion of "now"
(expiring sets, rate limits) runs as a Lua script that reads the server's ``TIME``: every
pod then agrees on the clock, and each read-modify-write is atomic on the server.

Expiring sets are sorted sets scored by each member's expiry (Unix ms). Expired members
are trimmed on read, and the key's own TTL follows its latest member so an abandoned set
disappears by itself.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from svckit.errors import OUTAGE_RETRY_AFTER_SECONDS, Unavailable
from svckit.ports import RateDecision

POOL_SIZE = 32  # connections per process and namespace
POOL_WAIT_SECONDS = 10.0

# KEYS[1] counter; ARGV[1] amount, ARGV[2] ttl ms (0: none). TTL only on creation.
_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

# KEYS[1] zset; ARGV[1] member, ARGV[2] ttl ms. Key TTL pushed to the latest expiry.
_EXPIRING_ADD = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"""

# KEYS[1] zset. Trim expired members, return the live ones.
_EXPIRING_MEMBERS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

# KEYS: zsets. The same as _EXPIRING_MEMBERS for each; one array of live members per key.
_EXPIRING_MEMBERS_MANY = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[i] = redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf')
end
return out
"""
KEYS_PER_SCRIPT = 500  # keys per _EXPIRING_MEMBERS_MANY call: bounds one script's run time

# GCRA. KEYS[1] holds the theoretical arrival time (TAT, microseconds).
# ARGV[1] limit, ARGV[2] window µs. Returns {allowed, remaining, retry_after µs}.
# A request is allowed when, after adding one emission interval, the TAT is at most one
# window ahead of now; a refused request leaves the TAT untouched (not counted).
_RATE_HIT = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
-- 0.001 µs of tolerance: limit * (window / limit) may round to just above window.
if allow_at - now > 0.001 then
  return {0, 0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
local remaining = math.floor((window - (new_tat - now)) / interval + 1e-9)
return {1, remaining, 0}
"""


# Redis unreachable, restarting (LOADING is a ConnectionError), timing out, or a replica
# that is not yet promoted. Anything else (a wrong type, a script bug) stays a bug.
_OUTAGES = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

P = ParamSpec("P")
R = TypeVar("R")


class HotStateUnavailable(Unavailable, RedisError):
    """Redis is down or unreachable: UNAVAILABLE (gRPC), 503 + Retry-After (REST), an
    UNAVAILABLE Error frame (WebSocket), never INTERNAL. Still a ``RedisError``, so code
    that catches the client's errors keeps working."""


def _outage_is_unavailable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _OUTAGES as exc:
            raise HotStateUnavailable(
                "the hot-state store (Redis) is unavailable; retry shortly",
                retry_after=OUTAGE_RETRY_AFTER_SECONDS,
            ) from exc

    return call


def _ms(ttl: float) -> int:
    """Seconds to whole milliseconds, at least 1 (0 would mean "no expiry" to Redis)."""
    return max(1, round(ttl * 1000))


def _as_bytes(value: bytes | str | None) -> bytes | None:
    """The client never decodes (``decode_responses`` is off); this narrows its typing."""
    return value.encode() if isinstance(value, str) else value


class RedisHotState:
    """A ``ports.HotState`` on one Redis connection pool (see the module docstring)."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        """Wrap a client; use :meth:`connect` rather than calling this directly."""
        self._client = client
        self.namespace = namespace
        self._incr = client.register_script(_INCR)
        self._expiring_add = client.register_script(_EXPIRING_ADD)
        self._expiring_members = client.register_script(_EXPIRING_MEMBERS)
        self._expiring_members_many = client.register_script(_EXPIRING_MEMBERS_MANY)
        self._rate_hit = client.register_script(_RATE_HIT)

    @classmethod
    async def connect(cls, url: str, namespace: str) -> RedisHotState:
        """Create a pooled client for ``url``; connections open lazily on first use."""
        # A blocking pool: callers beyond max_connections wait for a free connection instead
        # of failing (redis-py's default pool raises MaxConnectionsError, which under a burst
        # of connects or a heartbeat made registry writes and rate-limit checks fail).
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT_SECONDS,
            socket_connect_timeout=5,
            socket_timeout=5,
            health_check_interval=30,
        )
        return cls(redis.Redis(connection_pool=pool), namespace)

    def _key(self, key: str) -> str:
        return self.namespace + key

    @_outage_is_unavailable
    async def get(self, key: str) -> bytes | None:
        return _as_bytes(await self._client.get(self._key(key)))

    @_outage_is_unavailable
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return [_as_bytes(v) for v in await self._client.mget([self._key(k) for k in keys])]

    @_outage_is_unavailable
    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> bool:
        stored = await self._client.set(
            self._key(key),
            value,
            px=None if ttl is None else _ms(ttl),
            nx=only_if_absent,
        )
        return bool(stored)

    @_outage_is_unavailable
    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None = None) -> None:
        """One pipeline of SETs (one round trip), not a MULTI transaction."""
        if not items:
            return
        px = None if ttl is None else _ms(ttl)
        async with self._client.pipeline(transaction=False) as pipe:
            for key, value in items:
                pipe.set(self._key(key), value, px=px)
            await pipe.execute()

    @_outage_is_unavailable
    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*(self._key(k) for k in keys)))

    @_outage_is_unavailable
    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        ttl_ms = 0 if ttl is None else _ms(ttl)
        return int(await self._incr(keys=[self._key(key)], args=[amount, ttl_ms]))

    @_outage_is_unavailable
    async def expiring_add(self, key: str, member: str, ttl: float) -> None:
        await self._expiring_add(keys=[self._key(key)], args=[member, _ms(ttl)])

    @_outage_is_unavailable
    async def expiring_add_many(self, pairs: Sequence[tuple[str, str]], ttl: float) -> None:
        """One pipeline (one round trip) of the add script per pair."""
        if not pairs:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for key, member in pairs:
                await self._expiring_add(
                    keys=[self._key(key)], args=[member, _ms(ttl)], client=pipe
                )
            await pipe.execute()

    @_outage_is_unavailable
    async def expiring_remove(self, key: str, member: str) -> None:
        await self._client.zrem(self._key(key), member)

    @_outage_is_unavailable
    async def expiring_members(self, key: str) -> builtins.set[str]:
        members: list[bytes] = await self._expiring_members(keys=[self._key(key)])
        return {m.decode() for m in members}

    @_outage_is_unavailable
    async def expiring_members_many(self, keys: Sequence[str]) -> list[builtins.set[str]]:
        """One script call (one round trip) trims and reads up to ``KEYS_PER_SCRIPT`` keys:
        a pipeline of one call per key cost the caller ~30 µs of client work per key."""
        found: list[builtins.set[str]] = []
        for start in range(0, len(keys), KEYS_PER_SCRIPT):
            chunk = [self._key(k) for k in keys[start : start + KEYS_PER_SCRIPT]]
            results: list[list[bytes]] = await self._expiring_members_many(keys=chunk)
            found += [{m.decode() for m in members} for members in results]
        return found

    @_outage_is_unavailable
    async def rate_hit(self, key: str, limit: int, window: float) -> RateDecision:
        allowed, remaining, retry_us = await self._rate_hit(
            keys=[self._key(key)], args=_rate_args(limit, window)
        )
        return _decision(allowed, remaining, retry_us)

    @_outage_is_unavailable
    async def rate_hit_many(self, hits: Sequence[tuple[str, int, float]]) -> list[RateDecision]:
        """One pipeline (one round trip) of the GCRA script per hit."""
        if not hits:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for key, limit, window in hits:
                await self._rate_hit(
                    keys=[self._key(key)], args=_rate_args(limit, window), client=pipe
                )
            results: list[list[int]] = await pipe.execute()
        return [_decision(*result) for result in results]

    async def ping(self) -> bool:
        """True when Redis answers PING within two seconds."""
        try:
            async with asyncio.timeout(2.0):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        """Disconnect every pooled connection."""
        await self._client.aclose(close_connection_pool=True)


def _rate_args(limit: int, window: float) -> list[int]:
    if limit < 1 or window <= 0:
        raise ValueError("rate limit needs limit >= 1 and window > 0")
    return [limit, max(1, round(window * 1_000_000))]


def _decision(allowed: int, remaining: int, retry_us: int) -> RateDecision:
    return RateDecision(
        allowed=bool(allowed), remaining=int(remaining), retry_after=int(retry_us) / 1e6
    )
