"""The ``ports.Database`` contract under task cancellation, on PostgreSQL and SQLite alike.

A request handler can be cancelled at any await (a client disconnects, a deadline fires):
on the await of BEGIN, of a statement, of COMMIT, or of the ROLLBACK that cleans up after
one of those. Whatever the point, the transaction is all-or-nothing and the database
handle stays usable: the next transaction commits and ``ping`` answers True. Every handle
here has a single connection, so a connection handed back mid-transaction would be the
one the next transaction gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from svckit.ports import Database, Executor

from .conftest import DatabaseFactory

ROWS_DDL = "CREATE TABLE rows (id BIGINT PRIMARY KEY)"
INSERT_ROW = "INSERT INTO rows (id) VALUES ($1)"
# A statement that takes long enough to be cancelled while it is pending, on both engines.
SLOW_QUERY = {
    "postgres": "SELECT pg_sleep(30)",
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000000)"
        " SELECT count(*) FROM n"
    ),
}

Body = Callable[[Executor, asyncio.Event], Awaitable[None]]


async def one_connection(databases: DatabaseFactory) -> Database:
    database = await databases.open(pool_max=1)
    await database.execute(ROWS_DDL)
    return database


async def ids_present(database: Database, *ids: int) -> list[int]:
    rows = await database.fetch("SELECT id FROM rows ORDER BY id")
    return [row["id"] for row in rows if row["id"] in ids]


async def assert_usable(database: Database, marker: int) -> None:
    """The next transaction commits and ping answers: nothing was left open."""
    async with asyncio.timeout(20):
        async with database.transaction() as tx:
            await tx.execute(INSERT_ROW, marker)
        assert [marker] == await ids_present(database, marker)
        assert await database.ping() is True


async def settle(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled transaction task to finish, whatever its outcome."""
    async with asyncio.timeout(20):
        await asyncio.gather(task, return_exceptions=True)


async def test_cancelled_after_any_number_of_steps(
    databases: DatabaseFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled after 0..39 event-loop steps (BEGIN, statements, COMMIT), a transaction is
    all-or-nothing, the next one commits, and nothing is logged as an error (a client that
    goes away is routine)."""
    database = await one_connection(databases)

    for steps in range(40):
        first, second = 2 * steps + 1, 2 * steps + 2

        async def two_inserts(first: int = first, second: int = second) -> None:
            async with database.transaction() as tx:
                await tx.execute(INSERT_ROW, first)
                await tx.execute(INSERT_ROW, second)

        task = asyncio.create_task(two_inserts())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await settle(task)

        assert await ids_present(database, first, second) in ([], [first, second]), steps
        await assert_usable(database, 1000 + steps)
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def _insert_then_slow_statement(tx: Executor, reached: asyncio.Event) -> None:
    await tx.execute(INSERT_ROW, 1)
    reached.set()
    await tx.fetchval(SLOW_QUERY[tx.dialect])


async def _insert_then_wait(tx: Executor, reached: asyncio.Event) -> None:
    await tx.execute(INSERT_ROW, 1)
    reached.set()
    await asyncio.Event().wait()


async def _insert_then_commit(tx: Executor, reached: asyncio.Event) -> None:
    await tx.execute(INSERT_ROW, 1)
    reached.set()  # the test's cancel lands on the await of COMMIT


@pytest.mark.parametrize(
    "body",
    [_insert_then_slow_statement, _insert_then_wait, _insert_then_commit],
    ids=["in-a-statement", "in-the-block", "in-commit"],
)
@pytest.mark.parametrize("cancels", [1, 2], ids=["once", "again-during-rollback"])
async def test_cancelled_at_a_point(databases: DatabaseFactory, body: Body, cancels: int) -> None:
    """Cancelled in a statement, in the block or in COMMIT (and once more while it rolls
    back), a transaction is all-or-nothing and the next one commits."""
    database = await one_connection(databases)
    reached = asyncio.Event()

    async def run() -> None:
        async with database.transaction() as tx:
            await body(tx, reached)

    task = asyncio.create_task(run())
    async with asyncio.timeout(20):
        await reached.wait()
    for _ in range(cancels):
        task.cancel()
        await asyncio.sleep(0)
    await settle(task)

    assert await ids_present(database, 1) in ([], [1])
    if body is not _insert_then_commit:
        assert [] == await ids_present(database, 1)
    await assert_usable(database, 2)


async def test_cancelled_while_waiting_for_the_write_lock(databases: DatabaseFactory) -> None:
    """Cancelled while its BEGIN waits behind another connection's write transaction, a
    transaction leaves nothing open: once the other commits, the next transaction commits."""
    database = await one_connection(databases)
    other = await databases.open(database.schema, pool_max=1)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_write_lock() -> None:
        async with other.transaction() as tx:
            await tx.execute(INSERT_ROW, 1)
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_write_lock())
    async with asyncio.timeout(20):
        await holding.wait()

    async def insert() -> None:
        async with database.transaction() as tx:
            # PostgreSQL's BEGIN does not wait; its INSERT waits on the row lock instead.
            await tx.execute(INSERT_ROW, 1)

    waiter = asyncio.create_task(insert())
    await asyncio.sleep(0.2)  # let the waiter reach the lock wait (not a timing assertion)
    waiter.cancel()
    await settle(waiter)
    release.set()
    await settle(holder)

    assert [1] == await ids_present(database, 1)
    await assert_usable(database, 2)


async def test_ping_is_false_while_a_stuck_transaction_holds_the_database(
    databases: DatabaseFactory,
) -> None:
    """ping answers False (in bounded time) while a transaction that never ends holds the
    handle's only connection and the write lock, and True once it ends."""
    database = await one_connection(databases)
    holding, release = asyncio.Event(), asyncio.Event()

    async def stuck() -> None:
        async with database.transaction() as tx:
            await tx.execute(INSERT_ROW, 1)
            holding.set()
            await release.wait()

    holder = asyncio.create_task(stuck())
    try:
        async with asyncio.timeout(20):
            await holding.wait()
            assert await database.ping() is False
    finally:
        release.set()
        await settle(holder)

    await assert_usable(database, 2)


async def test_sqlite_ping_is_false_while_another_connection_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    """SQLite only (PostgreSQL has no database-wide write lock): ping answers False while
    another process's connection holds the file's write lock, although reads still work."""
    databases = DatabaseFactory("sqlite", tmp_path)
    try:
        database = await one_connection(databases)
        other = await databases.open(database.schema)
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold_write_lock() -> None:
            async with other.transaction() as tx:
                await tx.execute(INSERT_ROW, 1)
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_write_lock())
        try:
            async with asyncio.timeout(20):
                await holding.wait()
                assert 0 == await database.fetchval("SELECT count(*) FROM rows")
                assert await database.ping() is False
        finally:
            release.set()
            await settle(holder)

        assert await database.ping() is True
    finally:
        await databases.cleanup()


async def test_sqlite_transaction_left_open_is_rolled_back_by_the_next(tmp_path: Path) -> None:
    """SQLite only (PostgreSQL's pool rolls back every connection it takes back): a
    transaction left open on the connection, here by a stray BEGIN outside transaction(),
    is rolled back when the next transaction starts, which then commits."""
    databases = DatabaseFactory("sqlite", tmp_path)
    try:
        database = await one_connection(databases)
        await database.execute("BEGIN")
        await database.execute(INSERT_ROW, 1)

        await assert_usable(database, 2)

        assert [2] == await ids_present(database, 1, 2)
    finally:
        await databases.cleanup()
