"""The ports every service's adapters implement.

Each port is a ``typing.Protocol`` with a documented contract per method; every adapter
behind a port (PostgreSQL and SQLite for storage, RabbitMQ and memory for the bus, Redis
and memory for hot state) passes the same contract suite in ``tests/contract``.

Conventions shared by all storage adapters, so one SQL text runs on both engines:

* Placeholders are PostgreSQL style (``$1``, ``$2``); the SQLite adapter rewrites them.
* Table names are unqualified: a storage handle is opened for one service's schema
  (PostgreSQL ``search_path``; SQLite one database file per service), which is how each
  service owns its tables and never reads another's.
* Times are integers (Unix milliseconds), booleans are integers 0/1, ids are BIGINT,
  opaque bytes are ``bytea``/``BLOB``: the types both engines return unchanged.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Row = Mapping[str, Any]
Dialect = Literal["postgres", "sqlite"]


class StorageError(Exception):
    """A storage operation failed; ``retryable`` says whether trying again may help."""

    retryable: bool = False


class UniqueViolation(StorageError):
    """An INSERT or UPDATE hit a unique constraint (the same on every engine)."""


class StorageUnavailable(StorageError):
    """The database could not be reached or the connection broke; a retry may help."""

    retryable = True


class Executor(Protocol):
    """Runs SQL. Both a database handle and an open transaction are executors; both say
    which dialect they speak, for the few statements that differ."""

    dialect: Dialect

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed (0 when unknown)."""
        ...

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple, in order."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; return every row as a mapping from column name to value."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """Run a query; return its first row, or None when it has none."""
        ...

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run a query; return the first column of its first row, or None."""
        ...


class Database(Executor, Protocol):
    """A connection pool bound to one service's schema.

    Statements outside ``transaction()`` autocommit. ``transaction()`` yields an executor
    whose statements commit together when the block exits normally and roll back when it
    raises; transactions are serializable against each other for writes to the same rows
    (PostgreSQL row locks, SQLite's single writer). A task cancelled at any await inside
    ``transaction()`` (BEGIN, a statement, COMMIT) rolls back like a raising block: the
    connection is clean before another caller gets it, and the next transaction works.
    """

    schema: str

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """Open a transaction (see the class docstring)."""
        ...

    async def ping(self) -> bool:
        """Return True when the database could run a write transaction now: it answers
        within a couple of seconds (PostgreSQL: a pooled connection answers SELECT 1;
        SQLite: its write lock can be taken). False, never an exception, otherwise."""
        ...

    async def close(self) -> None:
        """Close every connection; later calls raise StorageUnavailable."""
        ...


class BusError(Exception):
    """A bus operation failed; ``retryable`` says whether trying again may help."""

    retryable: bool = False


class BusUnavailable(BusError):
    """The broker could not confirm a publish after the adapter's own retries."""

    retryable = True


class Unroutable(BusError):
    """No queue is bound to the routing key (for delivery: that gateway pod is gone)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message taken from a queue."""

    body: bytes
    routing_key: str
    headers: Mapping[str, str] = field(default_factory=dict)
    redelivered: bool = False


Handler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    """A running consumer; ``cancel()`` stops it after the message in hand is handled.
    A handler may cancel its own subscription."""

    async def cancel(self) -> None:
        """Stop consuming; unacknowledged messages go back to the queue."""
        ...


class MessageBus(Protocol):
    """Point-to-point delivery between processes: publish to a routing key, consume a queue.

    Delivery is at least once. ``publish`` returns only once the broker has taken
    responsibility for the message (publisher confirm), retrying internally while the
    connection recovers; it raises ``Unroutable`` when no queue is bound to the routing key
    and ``BusUnavailable`` when the broker stays unreachable.
    """

    async def publish(
        self, routing_key: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish one message (see the class docstring)."""
        ...

    async def publish_many(
        self, routing_key: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish several messages to one routing key, in order, confirmed together."""
        ...

    async def subscribe(self, queue: str, routing_key: str, handler: Handler) -> Subscription:
        """Declare ``queue`` (durable; removed after it has been unused for a while), bind it
        to ``routing_key`` and call ``handler`` for each message, one at a time per queue, in
        publish order. A message is acknowledged when the handler returns; when the handler
        raises, it is redelivered once (``redelivered=True``) and then dropped.

        Two consequences of RabbitMQ's semantics that every adapter allows: a redelivered
        message may arrive after messages published later (the consumer has prefetched
        them), and ``redelivered`` is also set on messages a cancelled or disconnected
        consumer had prefetched but never handled, so those get no second attempt."""
        ...

    async def ping(self) -> bool:
        """Return True when the broker connection is open."""
        ...

    async def close(self) -> None:
        """Cancel every subscription and close the connection."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    remaining: int
    retry_after: float  # seconds until the next request would be allowed; 0 when allowed


class HotState(Protocol):
    """Short-lived shared state: TTL keys, counters, expiring sets and rate-limit buckets.

    Keys are plain strings; every adapter prefixes them with its namespace so services
    never collide. Values are bytes. TTLs are seconds (floats allowed, millisecond
    resolution). Nothing here is durable: callers must tolerate its loss.

    (Inside this class ``set`` names the method below, so annotations spell the builtin
    type ``builtins.set``; plain ``set[str]`` makes mypy see the method.)
    """

    async def get(self, key: str) -> bytes | None:
        """Return the value stored at ``key``, or None when absent or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values of several keys, in order (None for each absent key)."""
        ...

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> bool:
        """Store ``value``; with ``only_if_absent`` do nothing if the key exists. Return
        whether the value was stored."""
        ...

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None = None) -> None:
        """Store several values, each with the same ``ttl``, in one round trip (not atomic:
        after a failure some may be stored). Later items win over earlier ones."""
        ...

    async def delete(self, *keys: str) -> int:
        """Remove keys; return how many existed."""
        ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to an integer counter (created at 0) and return the new value.
        ``ttl`` is applied only when the counter is created."""
        ...

    async def expiring_add(self, key: str, member: str, ttl: float) -> None:
        """Add ``member`` to the expiring set ``key``, or refresh it: it stays a member for
        ``ttl`` seconds from now unless refreshed again."""
        ...

    async def expiring_add_many(self, pairs: Sequence[tuple[str, str]], ttl: float) -> None:
        """``expiring_add`` for many (key, member) pairs in one round trip (a heartbeat)."""
        ...

    async def expiring_remove(self, key: str, member: str) -> None:
        """Remove ``member`` from the expiring set ``key`` now."""
        ...

    async def expiring_members(self, key: str) -> builtins.set[str]:
        """Return the members of the expiring set ``key`` that have not expired."""
        ...

    async def expiring_members_many(self, keys: Sequence[str]) -> list[builtins.set[str]]:
        """``expiring_members`` for several keys in one round trip, in order."""
        ...

    async def rate_hit(self, key: str, limit: int, window: float) -> RateDecision:
        """Count one request against a bucket allowing ``limit`` requests per ``window``
        seconds (GCRA: smooth, bursts up to ``limit``). A refused request is not counted."""
        ...

    async def rate_hit_many(self, hits: Sequence[tuple[str, int, float]]) -> list[RateDecision]:
        """``rate_hit`` for several ``(key, limit, window)`` in one round trip, in order (hits
        on one key count one after the other)."""
        ...

    async def ping(self) -> bool:
        """Return True when the store answers."""
        ...

    async def close(self) -> None:
        """Release the connection pool."""
        ...
