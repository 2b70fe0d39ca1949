"""Fixtures that hand every contract test each adapter of its port, on real servers.

Each port has a small factory (``DatabaseFactory``, ``BusFactory``, ``HotStateFactory``)
that opens adapters through ``svckit.backends`` exactly as a service would, gives each
test private names (a random schema, queue names, key namespace) and removes them
afterwards. A server that cannot be reached fails the test with the URL to fix: a
contract suite that silently skips proves nothing.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest
import redis.asyncio as redis

from svckit.backends import EmbeddedBackends, open_bus, open_database, open_hot_state
from svckit.ports import Database, Delivery, HotState, MessageBus

POSTGRES_URL = os.environ.get(
    "MINITG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MINITG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("MINITG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def unreachable(what: str, url: str, env: str, exc: BaseException) -> None:
    pytest.fail(f"{what} at {url} is unreachable ({exc!r}); start it or set {env}", pytrace=False)


class DatabaseFactory:
    """Opens ``Database`` handles of one kind, each on its own schema, and drops them."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.url = POSTGRES_URL if kind == "postgres" else f"sqlite:///{tmp_path}/minitg.db"
        self._handles: list[Database] = []
        self._schemas: list[str] = []

    async def check_reachable(self) -> None:
        if self.kind != "postgres":
            return
        try:
            conn = await asyncpg.connect(self.url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            unreachable("PostgreSQL", self.url, "MINITG_TEST_POSTGRES_URL", exc)
        await conn.close()

    async def open(self, schema: str | None = None, *, pool_max: int = 10) -> Database:
        schema = schema or unique("ct_")
        self._schemas.append(schema)
        handle = await open_database(self.url, schema, pool_max=pool_max)
        self._handles.append(handle)
        return handle

    async def cleanup(self) -> None:
        for handle in self._handles:
            await handle.close()
        if self.kind == "postgres" and self._schemas:
            conn = await asyncpg.connect(self.url)
            try:
                for schema in self._schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


class BusFactory:
    """Opens ``MessageBus`` handles of one kind; every handle of a memory factory shares
    one in-process broker, as the services of one process do."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._embedded = EmbeddedBackends()
        self._buses: list[MessageBus] = []
        self._queues: list[str] = []

    async def open(self) -> MessageBus:
        if self.kind == "memory":
            bus = await open_bus("memory://", embedded=self._embedded)
        else:
            try:
                bus = await open_bus(AMQP_URL, queue_expires_ms=60_000)
            except Exception as exc:
                unreachable("RabbitMQ", AMQP_URL, "MINITG_TEST_AMQP_URL", exc)
        self._buses.append(bus)
        return bus

    def queue(self) -> str:
        """A fresh queue name, deleted from the broker after the test."""
        name = unique("minitg-test-q-")
        self._queues.append(name)
        return name

    async def cleanup(self) -> None:
        for bus in self._buses:
            await bus.close()
        if self.kind == "amqp" and self._queues:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                for name in self._queues:
                    await channel.queue_delete(name)


class HotStateFactory:
    """Opens ``HotState`` stores of one kind under random namespaces; ``advance`` moves
    the memory adapter's injected clock, and really sleeps for Redis."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.now = 1_000.0
        self._embedded = EmbeddedBackends(clock=lambda: self.now)
        self._stores: list[HotState] = []
        self._namespaces: list[str] = []

    async def open(self, namespace: str | None = None) -> HotState:
        namespace = namespace or unique("minitg-test:") + ":"
        self._namespaces.append(namespace)
        url = "memory://" if self.kind == "memory" else REDIS_URL
        store = await open_hot_state(url, namespace, embedded=self._embedded)
        self._stores.append(store)
        if not await store.ping():
            unreachable("Redis", REDIS_URL, "MINITG_TEST_REDIS_URL", ConnectionError("no PONG"))
        return store

    async def advance(self, seconds: float) -> None:
        if self.kind == "memory":
            self.now += seconds
        else:
            await asyncio.sleep(seconds)

    async def cleanup(self) -> None:
        for store in self._stores:
            await store.close()
        if self.kind == "redis":
            client = redis.Redis.from_url(REDIS_URL)
            try:
                for namespace in self._namespaces:
                    keys = [key async for key in client.scan_iter(match=namespace + "*")]
                    if keys:
                        await client.delete(*keys)
            finally:
                await client.aclose()


class TcpProxy:
    """A TCP relay to a real server that a test can cut (``stop``) and restore (``start``),
    to see an adapter through a network outage without touching the shared server."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a dead broker would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


class Collector:
    """A bus handler that records deliveries and lets a test wait for a count."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self._changed.set()

    @property
    def bodies(self) -> list[bytes]:
        return [d.body for d in self.deliveries]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        async with asyncio.timeout(timeout):
            while len(self.deliveries) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.deliveries


@pytest.fixture(params=["postgres", "sqlite"])
async def databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(request.param, tmp_path)
    await factory.check_reachable()
    yield factory
    await factory.cleanup()


@pytest.fixture
async def database(databases: DatabaseFactory) -> Database:
    return await databases.open()


@pytest.fixture(params=["amqp", "memory"])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    factory = BusFactory(request.param)
    yield factory
    await factory.cleanup()


@pytest.fixture
async def bus(buses: BusFactory) -> MessageBus:
    return await buses.open()


@pytest.fixture(params=["redis", "memory"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[HotStateFactory]:
    factory = HotStateFactory(request.param)
    yield factory
    await factory.cleanup()


@pytest.fixture
async def state(stores: HotStateFactory) -> HotState:
    return await stores.open()
