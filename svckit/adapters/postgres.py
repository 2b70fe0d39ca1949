"""PostgreSQL storage adapter (asyncpg) behind ``ports.Database``.

One pool per service schema: every connection in the pool has ``search_path`` set to
``<schema>,public`` so a service's SQL names its tables unqualified and can never reach
another service's tables by accident. The schema is created on open.

Errors are translated at this boundary, so callers branch on the port's exceptions and
never import asyncpg: unique violations become ``UniqueViolation``, a broken or closed
connection ``StorageUnavailable``, and lock conflicts (deadlock, serialization failure) a
retryable ``StorageError``. Anything else (a syntax error, a type mismatch) is a bug in the
caller's SQL and propagates unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import asyncpg

from svckit.adapters.cancellation import finish_despite_cancellation
from svckit.ports import Dialect, Executor, Row, StorageError, StorageUnavailable, UniqueViolation

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Command tags whose trailing number counts changed rows ("INSERT 0 3", "UPDATE 2").
_CHANGING_COMMANDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "COPY"})
_CLOSE_GRACE_SECONDS = 5.0
# A connection attempt to an address that drops packets fails after this, not asyncpg's 60 s.
CONNECT_TIMEOUT_SECONDS = 10.0
log = logging.getLogger(__name__)
_ROLLBACK_TIMEOUT_SECONDS = 5.0

# Exceptions that mean "the connection, not the statement, failed": a retry on a fresh
# connection may succeed. InterfaceError also covers "pool is closed" after close().
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    OSError,
    TimeoutError,
)


def rows_changed(status: str) -> int:
    """Parse a PostgreSQL command tag into the number of rows it changed (0 if none)."""
    parts = status.split()
    if len(parts) >= 2 and parts[0] in _CHANGING_COMMANDS and parts[-1].isdigit():
        return int(parts[-1])
    return 0


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Translate asyncpg's exceptions into the port's, keeping the cause chained."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(str(exc)) from exc
    except asyncpg.TransactionRollbackError as exc:
        error = StorageError(f"transaction conflict: {exc}")
        error.retryable = True
        raise error from exc
    except _UNAVAILABLE_ERRORS as exc:
        raise StorageUnavailable(f"PostgreSQL unavailable: {exc}") from exc


class _ConnectionExecutor:
    """An ``Executor`` over one checked-out connection (a transaction's statements)."""

    dialect: Dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with _mapped_errors():
            status: str = await self._conn.execute(sql, *args)
        return rows_changed(status)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        with _mapped_errors():
            await self._conn.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _mapped_errors():
            records = await self._conn.fetch(sql, *args)
        return [dict(record) for record in records]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _mapped_errors():
            record = await self._conn.fetchrow(sql, *args)
        return None if record is None else dict(record)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with _mapped_errors():
            return await self._conn.fetchval(sql, *args)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is. asyncpg's default reset is a round trip
    (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) on every release, 5 % of the
    chat service's CPU under load; minitg leaves no session state behind: its settings come
    with the connection (search_path), locks are transaction-scoped, no LISTEN, no cursors
    outside a transaction. An open transaction is still rolled back: asyncpg's own
    connection-state reset runs before this one."""


class PostgresDatabase:
    """A ``ports.Database`` on an asyncpg pool bound to one schema.

    Rows are returned as plain dicts (asyncpg's ``Record`` is not a ``Mapping``), so a
    row compares equal to the same row from the SQLite adapter.
    """

    dialect: Dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool | None, schema: str) -> None:
        """Wrap an open pool; use :meth:`open` rather than calling this directly."""
        self._pool: asyncpg.Pool | None = pool
        self.schema = schema
        self._opening: asyncio.Task[None] | None = None  # see open_or_retry

    @classmethod
    async def open(
        cls, dsn: str, schema: str, *, pool_min: int = 1, pool_max: int = 10
    ) -> PostgresDatabase:
        """Create ``schema`` if missing and open a pool whose search_path is that schema."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
        try:
            with _mapped_errors():
                await _create_schema(dsn, schema)
                pool = await asyncpg.create_pool(
                    dsn,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    min_size=pool_min,
                    max_size=pool_max,
                    server_settings={"search_path": f"{schema},public"},
                    reset=_keep_session,
                )
        except asyncpg.TooManyConnectionsError as exc:
            raise StorageUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            # The server answered and refused (no such database, a wrong password): a
            # retry cannot fix that, so start-up stops with this one line.
            raise StorageError(f"PostgreSQL refused schema {schema!r}: {exc}") from exc
        return cls(pool, schema)

    @classmethod
    async def open_or_retry(
        cls,
        dsn: str,
        schema: str,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        retry_seconds: float = 2.0,
    ) -> PostgresDatabase:
        """:meth:`open`, but when PostgreSQL is unreachable return a handle at once that
        opens its pool in the background every ``retry_seconds`` (a degraded start):
        until then every call raises ``StorageUnavailable`` and ``ping`` is False."""
        try:
            return await cls.open(dsn, schema, pool_min=pool_min, pool_max=pool_max)
        except StorageUnavailable as exc:
            log.warning("%s; starting without it, retrying every %g s", exc, retry_seconds)
        db = cls(None, schema)

        async def open_later() -> None:
            while True:
                await asyncio.sleep(retry_seconds)
                try:
                    opened = await cls.open(dsn, schema, pool_min=pool_min, pool_max=pool_max)
                except StorageUnavailable:
                    continue
                db._pool = opened._pool
                log.info("connected to PostgreSQL (schema %s)", schema)
                return

        db._opening = asyncio.create_task(open_later(), name=f"postgres-open:{schema}")
        return db

    def pool_in_use(self) -> int:
        """Connections currently checked out of the pool (for a saturation gauge)."""
        if self._pool is None:
            return 0
        return int(self._pool.get_size()) - int(self._pool.get_idle_size())

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            if self._opening is not None and not self._opening.done():
                raise StorageUnavailable(f"PostgreSQL not connected yet (schema {self.schema!r})")
            raise StorageUnavailable(f"database handle for schema {self.schema!r} is closed")
        return self._pool

    async def execute(self, sql: str, *args: Any) -> int:
        with _mapped_errors():
            status: str = await self._require_pool().execute(sql, *args)
        return rows_changed(status)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        with _mapped_errors():
            await self._require_pool().executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _mapped_errors():
            records = await self._require_pool().fetch(sql, *args)
        return [dict(record) for record in records]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _mapped_errors():
            record = await self._require_pool().fetchrow(sql, *args)
        return None if record is None else dict(record)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with _mapped_errors():
            return await self._require_pool().fetchval(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """Run the block in one transaction on one pooled connection.

        Only the pool and transaction calls are error-mapped here: an exception raised by
        the caller's own code inside the block passes through untouched (after rollback).

        Cancellation-safe: a cancel landing on BEGIN, a statement or COMMIT rolls back
        before the connection goes back to the pool, even if the task is cancelled again
        meanwhile (asyncpg first waits for the cancelled statement's server-side cancel).
        Plain BEGIN/COMMIT/ROLLBACK rather than asyncpg's ``Transaction``: that object
        cannot be rolled back once its BEGIN was interrupted, which left the rollback to
        the pool's release, logging an error for every cancelled request.
        """
        pool = self._require_pool()
        with _mapped_errors():
            conn = await pool.acquire()
        try:
            try:
                with _mapped_errors():
                    await conn.execute("BEGIN")
                yield _ConnectionExecutor(conn)
                with _mapped_errors():
                    await conn.execute("COMMIT")
            except BaseException:
                await finish_despite_cancellation(_roll_back(conn))
                raise
        finally:
            await pool.release(conn)

    async def ping(self) -> bool:
        """True when a pooled connection answers ``SELECT 1`` within two seconds."""
        if self._pool is None:
            return False
        try:
            async with asyncio.timeout(2.0):
                return bool(await self._pool.fetchval("SELECT 1") == 1)
        except (asyncpg.PostgresError, *_UNAVAILABLE_ERRORS):
            return False

    async def close(self) -> None:
        """Close the pool, terminating connections still checked out after a grace period."""
        if self._opening is not None:
            self._opening.cancel()
            with suppress(asyncio.CancelledError):
                await self._opening
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_GRACE_SECONDS)
        except TimeoutError:
            pool.terminate()


async def _roll_back(conn: asyncpg.Connection) -> None:
    """ROLLBACK after a failure or a cancel (a no-op warning if BEGIN never ran). A
    connection that cannot roll back within a few seconds is terminated instead, which
    ends its transaction on the server, so the pool never hands out a half-done one."""
    try:
        async with asyncio.timeout(_ROLLBACK_TIMEOUT_SECONDS):
            await conn.execute("ROLLBACK")
    except (asyncpg.PostgresError, *_UNAVAILABLE_ERRORS):
        # A connection the server already closed is back in the pool; nothing to end.
        with suppress(asyncpg.InterfaceError):
            conn.terminate()


async def _create_schema(dsn: str, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS, tolerating a concurrent creator.

    Two processes running ``IF NOT EXISTS`` at once can still collide on the catalog's
    unique index (a known PostgreSQL race); the loser sees a unique violation although
    the schema now exists, which is the outcome it wanted.
    """
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        # A role without CREATE on the database may still use a schema an operator made:
        # CREATE SCHEMA IF NOT EXISTS checks that privilege even when the schema exists.
        if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            return
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:
        pass
    finally:
        await conn.close()
