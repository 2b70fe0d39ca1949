"""SQLite storage adapter (aiosqlite) behind ``ports.Database``, for embedded mode.

SQLite allows one writer at a time, so instead of a pool each handle owns ONE connection
and an ``asyncio.Lock`` serialises everything on it: an autocommit statement can never
slip into the middle of another task's open transaction, and transactions run one after
another (``BEGIN IMMEDIATE`` takes the write lock up front, so two processes sharing a
file queue on ``busy_timeout`` instead of failing at their first write). That is the
"serializable for writes" guarantee the port promises, at the cost of concurrency, which
embedded mode does not need.

Each service gets its own database file next to the configured one
(``var/minitg.db`` + schema ``auth`` -> ``var/minitg.auth.db``), the SQLite counterpart
of a PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import aiosqlite

from svckit.adapters.cancellation import finish_despite_cancellation
from svckit.ports import Dialect, Executor, Row, StorageError, StorageUnavailable, UniqueViolation

log = logging.getLogger("minitg.sqlite")

MEMORY = ":memory:"
_PLACEHOLDER = re.compile(r"\$(\d+)")
_BUSY_TIMEOUT_MS = 5000
# A healthy database takes its write lock in milliseconds; the health checks that call
# ping() give it 1-2 s, so waiting longer would only turn "down" into "timed out".
_PING_TIMEOUT_SECONDS = 1.5


def to_sqlite_placeholders(sql: str) -> str:
    """Rewrite PostgreSQL ``$n`` placeholders as SQLite ``?n`` (same numbering, so ``$1``
    may be reused and ``$10`` stays ``?10``). ``$`` inside string literals is not
    special-cased: the shared SQL never puts one there."""
    return _PLACEHOLDER.sub(r"?\1", sql)


def database_path(url: str, schema: str) -> str:
    """Map a ``sqlite://`` URL and a service schema to that service's database file.

    ``sqlite:///var/minitg.db`` is relative (``var/minitg.db``), ``sqlite:////abs/x.db``
    absolute; ``sqlite://:memory:`` (or ``sqlite:///:memory:``) stays in memory.
    """
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    rest = url.removeprefix("sqlite://")
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    if not rest.startswith("/") or rest == "/":
        raise ValueError(f"sqlite URL must be sqlite:///relative.db or sqlite:////abs.db: {url!r}")
    path = Path(rest[1:])
    return str(path.with_name(f"{path.stem}.{schema}{path.suffix}"))


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Translate sqlite3's exceptions into the port's, keeping the cause chained."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE constraint failed" in str(exc):
            raise UniqueViolation(str(exc)) from exc
        raise StorageError(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        # "database is locked" after busy_timeout: another process holds the write lock.
        if "locked" in str(exc) or "busy" in str(exc):
            raise StorageUnavailable(f"SQLite busy: {exc}") from exc
        raise


class _ConnectionExecutor:
    """Runs statements on the connection; the caller must hold the handle's lock."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with _mapped_errors():
            async with self._conn.execute(to_sqlite_placeholders(sql), args) as cursor:
                return max(cursor.rowcount, 0)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        with _mapped_errors():
            await self._conn.executemany(to_sqlite_placeholders(sql), args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _mapped_errors():
            rows = await self._conn.execute_fetchall(to_sqlite_placeholders(sql), args)
        return list(rows)  # type: ignore[arg-type]  # _dict_row makes each row a dict

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _mapped_errors():
            async with self._conn.execute(to_sqlite_placeholders(sql), args) as cursor:
                row = await cursor.fetchone()
        return row  # type: ignore[return-value]  # _dict_row makes each row a dict

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()), None)


class SqliteDatabase:
    """A ``ports.Database`` on one aiosqlite connection (see the module docstring)."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, schema: str) -> None:
        """Wrap an open connection; use :meth:`open` rather than calling this directly."""
        self._conn: aiosqlite.Connection | None = conn
        self._executor = _ConnectionExecutor(conn)
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None
        self.schema = schema

    @classmethod
    async def open(cls, url: str, schema: str) -> SqliteDatabase:
        """Open (creating if needed) the service's database file in WAL mode."""
        path = database_path(url, schema)
        if path != MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: sqlite3 must not open implicit transactions; we issue
        # BEGIN IMMEDIATE / COMMIT ourselves.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = _dict_row  # type: ignore[assignment]
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, schema)

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[_ConnectionExecutor]:
        """Hold the handle's lock for one statement or one transaction."""
        if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
            # Waiting for our own lock would hang forever; fail loudly instead.
            raise RuntimeError("inside transaction(): run statements on its executor")
        async with self._lock:
            if self._conn is None:
                raise StorageUnavailable(f"database handle for schema {self.schema!r} is closed")
            yield self._executor

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._exclusive() as executor:
            return await executor.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        async with self._exclusive() as executor:
            await executor.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._exclusive() as executor:
            return await executor.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._exclusive() as executor:
            return await executor.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._exclusive() as executor:
            return await executor.fetchval(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises.

        Cancellation-safe: a cancel landing on the await of BEGIN, of a statement or of
        COMMIT still rolls back, and the rollback runs to its end (even if cancelled again)
        before the lock is released. aiosqlite runs a cancelled call to completion on its
        thread anyway, so releasing the lock early would hand the next task a connection
        inside a transaction nobody owns: every later BEGIN fails and autocommit writes are
        never committed.
        """
        async with self._exclusive() as executor:
            self._tx_owner = asyncio.current_task()
            try:
                await self._begin(executor)
                yield executor
                await executor.execute("COMMIT")
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError) and self._conn is not None:
                    # Stop a long statement still running on the thread for a caller
                    # that has gone; the ROLLBACK queued behind it then runs at once.
                    await self._conn.interrupt()
                await finish_despite_cancellation(self._rollback_quietly())
                raise
            finally:
                self._tx_owner = None

    async def _begin(self, executor: _ConnectionExecutor) -> None:
        """BEGIN IMMEDIATE; a transaction found open (which only a bug or a failed
        rollback can leave) is rolled back first and logged, rather than failing every
        transaction from now on."""
        try:
            await executor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "within a transaction" not in str(exc):
                raise
            log.error("schema %s: rolling back a transaction left open", self.schema)
            await executor.execute("ROLLBACK")
            await executor.execute("BEGIN IMMEDIATE")

    async def _rollback_quietly(self) -> None:
        """Roll back; a failing rollback must not mask the error that caused it."""
        with suppress(sqlite3.Error, StorageError, ValueError):
            await self._executor.execute("ROLLBACK")

    async def ping(self) -> bool:
        """True when the write lock can be taken within ``_PING_TIMEOUT_SECONDS``.

        An empty ``BEGIN IMMEDIATE`` transaction, not ``SELECT 1``: in WAL mode a read
        answers while a stuck transaction (of this handle or another process) holds the
        write lock and every write fails.
        """
        try:
            async with asyncio.timeout(_PING_TIMEOUT_SECONDS):
                async with self.transaction():
                    pass
        except (StorageError, sqlite3.Error, ValueError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Close the connection (and stop aiosqlite's worker thread, which is not a
        daemon: an unclosed handle keeps the process from exiting)."""
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
