"""Choose an adapter by URL: the one place that knows which class serves which scheme.

| port        | embedded (one process)  | distributed                  |
|-------------|-------------------------|------------------------------|
| Database    | ``sqlite:///var/x.db``  | ``postgresql://`` (asyncpg)  |
| MessageBus  | ``memory://``           | ``amqp://`` / ``amqps://``   |
| HotState    | ``memory://``           | ``redis://`` / ``rediss://`` |

In embedded mode every service of the process calls ``open_bus("memory://")`` and
``open_hot_state("memory://", ...)`` on its own, yet a publish from the chat service must
reach the gateway's subscriber. The composition root therefore creates one
``EmbeddedBackends`` and passes it to every factory call as ``embedded=``; without one, a
``memory://`` URL gets a private, unshared backend (what a unit test wants). There is
deliberately no module-level default: sharing is an explicit decision of the caller.

Adapter modules are imported lazily, so the embedded mode does not need asyncpg,
aio-pika or redis to import cleanly, and a URL's driver is loaded only when used.
"""

from __future__ import annotations

import time
from typing import Literal, cast
from urllib.parse import urlsplit

from svckit.adapters.memory_bus import MemoryBroker, MemoryBus
from svckit.adapters.memory_state import Clock, MemoryHotState, MemoryStore
from svckit.ports import Database, HotState, MessageBus


class EmbeddedBackends:
    """The in-process broker and key space shared by every service of one process.

    Each factory call gets its own handle (its own subscriptions to cancel, its own
    namespace), so one service closing its handle does not stop another's consumers.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.broker = MemoryBroker()
        self.store = MemoryStore(clock)

    def bus(self) -> MemoryBus:
        """A new handle on the shared broker."""
        return MemoryBus(self.broker)

    def hot_state(self, namespace: str) -> MemoryHotState:
        """A new view of the shared key space, prefixed with ``namespace``."""
        return MemoryHotState(namespace, self.store)


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def _unsupported(kind: str, url: str, supported: str) -> ValueError:
    scheme = _scheme(url) or "(none)"
    return ValueError(f"unsupported {kind} URL scheme {scheme!r}; use {supported}")


async def open_database(
    url: str, schema: str, *, pool_min: int = 1, pool_max: int = 10
) -> Database:
    """Open the storage handle for one service's ``schema``.

    PostgreSQL: a pool of ``pool_min``..``pool_max`` connections, opened in the background
    while the server is unreachable (the role starts degraded); SQLite: one connection to
    the service's own file (the pool sizes do not apply).
    """
    scheme = _scheme(url)
    if scheme in ("postgresql", "postgres"):
        from svckit.adapters.postgres import PostgresDatabase

        return await PostgresDatabase.open_or_retry(
            url, schema, pool_min=pool_min, pool_max=pool_max
        )
    if scheme == "sqlite":
        from svckit.adapters.sqlite import SqliteDatabase

        return await SqliteDatabase.open(url, schema)
    raise _unsupported("database", url, "postgresql://, postgres:// or sqlite://")


async def open_bus(
    url: str,
    *,
    queue_type: str = "classic",
    queue_expires_ms: int = 600_000,
    embedded: EmbeddedBackends | None = None,
) -> MessageBus:
    """Open the message bus: in-process for ``memory://``, RabbitMQ for ``amqp(s)://``
    (connecting in the background while RabbitMQ is unreachable: a degraded start).

    ``queue_type`` ("classic" or "quorum") and ``queue_expires_ms`` shape the queues
    ``subscribe`` declares on RabbitMQ; the memory bus ignores them.
    """
    scheme = _scheme(url)
    if scheme == "memory":
        return (embedded or EmbeddedBackends()).bus()
    if scheme in ("amqp", "amqps"):
        from svckit.adapters.amqp import AmqpBus

        if queue_type not in ("classic", "quorum"):
            raise ValueError(f"queue_type must be 'classic' or 'quorum', not {queue_type!r}")
        return await AmqpBus.open(
            url,
            queue_type=cast(Literal["classic", "quorum"], queue_type),
            queue_expires_ms=queue_expires_ms,
        )
    raise _unsupported("broker", url, "memory:// or amqp:// (amqps://)")


async def open_hot_state(
    url: str, namespace: str, *, embedded: EmbeddedBackends | None = None
) -> HotState:
    """Open the hot-state store with every key prefixed by ``namespace``."""
    scheme = _scheme(url)
    if scheme == "memory":
        return (embedded or EmbeddedBackends()).hot_state(namespace)
    if scheme in ("redis", "rediss"):
        from svckit.adapters.redis_state import RedisHotState

        return await RedisHotState.connect(url, namespace)
    raise _unsupported("hot-state", url, "memory:// or redis:// (rediss://)")
