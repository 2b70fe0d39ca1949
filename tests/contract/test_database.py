"""The ``ports.Database`` contract, run against PostgreSQL and SQLite alike.

Every statement here is the portable SQL the services write: ``$n`` placeholders,
unqualified table names, BIGINT/INTEGER/TEXT/BYTEA columns.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from svckit.adapters.sqlite import database_path
from svckit.backends import open_database
from svckit.ports import Database, StorageUnavailable, UniqueViolation

from .conftest import DatabaseFactory

VALUES_DDL = "CREATE TABLE vals (id BIGINT PRIMARY KEY, n INTEGER, big BIGINT, t TEXT, b BYTEA)"
INSERT_VALUES = "INSERT INTO vals (id, n, big, t, b) VALUES ($1, $2, $3, $4, $5)"


class Boom(Exception):
    """An error of the caller's own, raised inside a transaction."""


async def test_values_round_trip(database: Database) -> None:
    """int, bigint, text, bytes and NULL come back unchanged, as plain dict rows."""
    await database.execute(VALUES_DDL)
    await database.execute(INSERT_VALUES, 1, -7, 2**62, "héllo ✓", b"\x00\xff\x10")
    await database.execute(INSERT_VALUES, 2, None, None, None, None)

    rows = await database.fetch("SELECT id, n, big, t, b FROM vals ORDER BY id")

    assert [
        {"id": 1, "n": -7, "big": 2**62, "t": "héllo ✓", "b": b"\x00\xff\x10"},
        {"id": 2, "n": None, "big": None, "t": None, "b": None},
    ] == [dict(row) for row in rows]
    assert "héllo ✓" == rows[0]["t"]


async def test_fetchrow_and_fetchval(database: Database) -> None:
    """fetchrow gives the first row or None; fetchval its first column or None."""
    await database.execute(VALUES_DDL)
    await database.execute(INSERT_VALUES, 5, 50, 500, "five", b"5")

    assert {"t": "five", "n": 50} == dict(
        await database.fetchrow("SELECT t, n FROM vals WHERE id = $1", 5) or {}
    )
    assert await database.fetchrow("SELECT t FROM vals WHERE id = $1", 6) is None
    assert 500 == await database.fetchval("SELECT big FROM vals WHERE id = $1", 5)
    assert await database.fetchval("SELECT big FROM vals WHERE id = $1", 6) is None


async def test_placeholders_beyond_nine_and_reused(database: Database) -> None:
    """$10 and $11 bind the 10th and 11th arguments, and $1 may appear twice."""
    columns = ", ".join(f"c{i} BIGINT" for i in range(1, 13))
    await database.execute(f"CREATE TABLE wide ({columns})")
    names = ", ".join(f"c{i}" for i in range(1, 13))
    # Reversed numbering, with $1 used for both c11 and c12.
    placeholders = ", ".join(f"${n}" for n in range(11, 0, -1)) + ", $1"

    await database.execute(f"INSERT INTO wide ({names}) VALUES ({placeholders})", *range(1, 12))

    row = await database.fetchrow(f"SELECT {names} FROM wide")
    assert [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1] == list((row or {}).values())


async def test_executemany_and_rows_changed(database: Database) -> None:
    """executemany runs once per tuple; execute returns the rows it changed (0 for DDL)."""
    assert 0 == await database.execute(VALUES_DDL)
    await database.executemany(INSERT_VALUES, [(i, i, i, str(i), None) for i in range(1, 6)])

    assert 2 == await database.execute("UPDATE vals SET n = n + 100 WHERE id <= $1", 2)
    assert 3 == await database.execute("DELETE FROM vals WHERE n < $1", 100)
    assert [101, 102] == [r["n"] for r in await database.fetch("SELECT n FROM vals ORDER BY id")]


async def test_insert_returning(database: Database) -> None:
    """INSERT ... RETURNING hands back the stored row."""
    await database.execute(VALUES_DDL)

    row = await database.fetchrow(INSERT_VALUES + " RETURNING id, t", 9, 1, 2, "nine", b"")

    assert {"id": 9, "t": "nine"} == dict(row or {})


async def test_transaction_commits(database: Database) -> None:
    """Statements in a transaction that exits normally are all visible afterwards."""
    await database.execute(VALUES_DDL)

    async with database.transaction() as tx:
        await tx.execute(INSERT_VALUES, 1, 1, 1, "a", None)
        await tx.execute(INSERT_VALUES, 2, 2, 2, "b", None)
        assert 2 == await tx.fetchval("SELECT count(*) FROM vals")

    assert 2 == await database.fetchval("SELECT count(*) FROM vals")


async def test_transaction_rolls_back_on_exception(database: Database) -> None:
    """A block that raises leaves nothing behind, and its own exception propagates."""
    await database.execute(VALUES_DDL)

    with pytest.raises(Boom):
        async with database.transaction() as tx:
            await tx.execute(INSERT_VALUES, 1, 1, 1, "a", None)
            raise Boom

    assert 0 == await database.fetchval("SELECT count(*) FROM vals")


async def test_unique_violation(database: Database) -> None:
    """A duplicate key raises UniqueViolation, in autocommit and inside a transaction."""
    await database.execute(VALUES_DDL)
    await database.execute(INSERT_VALUES, 1, 1, 1, "a", None)

    with pytest.raises(UniqueViolation):
        await database.execute(INSERT_VALUES, 1, 2, 2, "b", None)
    with pytest.raises(UniqueViolation):
        async with database.transaction() as tx:
            await tx.execute(INSERT_VALUES, 2, 2, 2, "b", None)
            await tx.execute(INSERT_VALUES, 1, 3, 3, "c", None)

    assert [1] == [r["id"] for r in await database.fetch("SELECT id FROM vals")]


async def test_concurrent_transactions_lose_no_update(databases: DatabaseFactory) -> None:
    """N concurrent increment transactions leave the counter at N, each value seen once."""
    database = await databases.open(pool_max=8)
    await database.execute("CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
    await database.execute("CREATE TABLE seen (n BIGINT PRIMARY KEY)")
    await database.execute("INSERT INTO counters (id, n) VALUES (1, 0)")

    async def increment() -> None:
        async with database.transaction() as tx:
            n = await tx.fetchval("UPDATE counters SET n = n + 1 WHERE id = $1 RETURNING n", 1)
            await asyncio.sleep(0)  # give other transactions a chance to interleave
            await tx.execute("INSERT INTO seen (n) VALUES ($1)", n)

    await asyncio.gather(*(increment() for _ in range(40)))

    assert 40 == await database.fetchval("SELECT n FROM counters WHERE id = 1")
    assert list(range(1, 41)) == [
        r["n"] for r in await database.fetch("SELECT n FROM seen ORDER BY n")
    ]


async def test_schemas_are_isolated(databases: DatabaseFactory) -> None:
    """Two handles on different schemas each see only their own tables."""
    first = await databases.open()
    second = await databases.open()
    await first.execute("CREATE TABLE things (id BIGINT PRIMARY KEY)")
    await second.execute("CREATE TABLE things (id BIGINT PRIMARY KEY)")

    await first.execute("INSERT INTO things (id) VALUES (1)")

    assert 1 == await first.fetchval("SELECT count(*) FROM things")
    assert 0 == await second.fetchval("SELECT count(*) FROM things")


async def test_ping_and_close(database: Database) -> None:
    """ping is True while open; after close it is False and statements raise StorageUnavailable."""
    assert await database.ping() is True

    await database.close()

    assert await database.ping() is False
    with pytest.raises(StorageUnavailable):
        await database.fetchval("SELECT 1")
    with pytest.raises(StorageUnavailable):
        async with database.transaction():
            pass


async def test_unreachable_server_is_storage_unavailable() -> None:
    """A database opened where nobody listens reports down and every call raises
    StorageUnavailable (retryable) while it keeps connecting in the background."""
    db = await open_database("postgresql://postgres@127.0.0.1:1/postgres", "auth")
    try:
        assert False is await db.ping()
        with pytest.raises(StorageUnavailable) as caught:
            await db.fetchval("SELECT 1")
        assert caught.value.retryable is True
    finally:
        await db.close()


async def test_unknown_scheme_is_rejected() -> None:
    """A database URL of an unsupported scheme is a ValueError naming that scheme."""
    with pytest.raises(ValueError, match="'mysql'"):
        await open_database("mysql://db/x", "auth")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/minitg.db", "var/minitg.auth.db"),
        ("sqlite:////srv/data/minitg.db", "/srv/data/minitg.auth.db"),
        ("sqlite:///var/minitg", "var/minitg.auth"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_file_per_service(url: str, expected: str) -> None:
    """Each service's SQLite file sits next to the configured one, named after its schema."""
    assert expected == database_path(url, "auth")


async def test_sqlite_creates_the_service_file(tmp_path: Path) -> None:
    """Opening creates missing parent directories and the service's own file."""
    database = await open_database(f"sqlite:///{tmp_path}/var/minitg.db", "chat")
    await database.close()

    assert (tmp_path / "var" / "minitg.chat.db").is_file()


async def test_postgres_killed_connection_is_unavailable(tmp_path: Path) -> None:
    """PostgreSQL only (SQLite has no server to lose): a connection the server terminates
    surfaces as StorageUnavailable, and the pool serves the next statement on a new one."""
    databases = DatabaseFactory("postgres", tmp_path)
    await databases.check_reachable()
    try:
        database = await databases.open(pool_max=1)
        with pytest.raises(StorageUnavailable):
            async with database.transaction() as tx:
                await tx.fetchval("SELECT pg_terminate_backend(pg_backend_pid())")

        assert 1 == await database.fetchval("SELECT 1")
    finally:
        await databases.cleanup()
