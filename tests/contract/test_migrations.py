"""The migration runner and every service's schema, on real PostgreSQL and on SQLite.

Handles come from the shared ``databases`` fixture (a fresh random PostgreSQL schema or
SQLite file per test, removed afterwards; ``MINITG_TEST_POSTGRES_URL`` picks the server).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from svckit.adapters.sqlite import database_path
from svckit.migrations import MigrationError, MigrationStatus, Migrator
from svckit.ports import Database

from .conftest import DatabaseFactory, unique

NOW_MS = 1_700_000_000_500

SERVICE_TABLES = {
    "auth_service": {"users", "sessions", "refresh_tokens"},
    "chat_service": {
        "chats",
        "chat_members",
        "messages",
        "message_hidden",
        "user_pts",
        "updates",
        "chat_requests",
        "outbox",
    },
    "presence_service": {"last_seen", "delivered_watermarks"},
}
SERVICES = sorted(SERVICE_TABLES)


def make_migrator(database: Database, package: str) -> Migrator:
    """A runner whose clock reads NOW_MS."""
    return Migrator(database, package, clock=lambda: NOW_MS / 1000)


@asynccontextmanager
async def migration_lock_held(databases: DatabaseFactory, schema: str) -> AsyncIterator[None]:
    """Hold, from another connection, the lock each migration step takes."""
    if databases.kind == "postgres":
        conn = await asyncpg.connect(databases.url)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('minitg.migrate.' || $1))", schema
                )
                yield
        finally:
            await conn.close()
    else:
        lite = sqlite3.connect(database_path(databases.url, schema), isolation_level=None)
        try:
            lite.execute("BEGIN IMMEDIATE")
            yield
            lite.execute("ROLLBACK")
        finally:
            lite.close()


async def tables(database: Database) -> set[str]:
    if database.dialect == "postgres":
        rows = await database.fetch(
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = $1", database.schema
        )
    else:
        rows = await database.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    return {str(r["name"]) for r in rows}


async def snapshot(database: Database) -> list[tuple[str, ...]]:
    """Columns, indexes and constraints of the handle's schema, as sorted text tuples."""
    if database.dialect == "postgres":
        queries = [
            "SELECT 'column', table_name, column_name, ordinal_position, data_type, udt_name,"
            " is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = $1",
            "SELECT 'index', tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1",
            "SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint"
            " WHERE connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
        ]
        results = [await database.fetch(query, database.schema) for query in queries]
    else:
        results = [await database.fetch("SELECT type, name, tbl_name, sql FROM sqlite_master")]
    return sorted(tuple(str(value) for value in row.values()) for rows in results for row in rows)


def write_package(root: Path, migrations: dict[str, tuple[str, str]]) -> str:
    """Create a package under ``root`` with the same migrations for both dialects."""
    name = unique("migpkg_")
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for dialect in ("postgres", "sqlite"):
        directory = root / name / "migrations" / dialect
        directory.mkdir(parents=True)
        for label, (up, down) in migrations.items():
            (directory / f"{label}.up.sql").write_text(up)
            (directory / f"{label}.down.sql").write_text(down)
    return name


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Build importable throwaway migration packages."""
    root = tmp_path / "packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return lambda migrations: write_package(root, migrations)


THREE_TABLES = {
    "0001_one": ("CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
    "0002_two": ("CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
    "0003_three": ("CREATE TABLE three (id INTEGER PRIMARY KEY);\n", "DROP TABLE three;\n"),
}


@pytest.mark.parametrize("service", SERVICES)
async def test_up_applies_every_migration_and_status_shows_it(
    database: Database, service: str
) -> None:
    """``up`` applies all migrations in order, creates the service's tables and records them."""
    migrator = make_migrator(database, service)
    versions = [m.version for m in migrator.migrations]

    assert versions == await migrator.up()
    assert SERVICE_TABLES[service] | {"schema_migrations"} == await tables(database)
    expected = [MigrationStatus(m.version, m.name, True, NOW_MS) for m in migrator.migrations]
    assert expected == await migrator.status()


@pytest.mark.parametrize("service", SERVICES)
async def test_down_to_zero_then_up_rebuilds_identical_schema(
    database: Database, service: str
) -> None:
    """After up, down_to(0) leaves only schema_migrations and a second up rebuilds it exactly."""
    migrator = make_migrator(database, service)
    await migrator.up()
    before = await snapshot(database)

    assert [m.version for m in reversed(migrator.migrations)] == await migrator.down_to(0)
    assert {"schema_migrations"} == await tables(database)
    assert not any(s.applied for s in await migrator.status())
    await migrator.up()
    assert before == await snapshot(database)


@pytest.mark.parametrize("service", SERVICES)
async def test_second_up_is_a_no_op(database: Database, service: str) -> None:
    """Running ``up`` on an up-to-date schema applies nothing and changes nothing."""
    migrator = make_migrator(database, service)
    await migrator.up()
    before = await snapshot(database)

    assert [] == await migrator.up()
    assert before == await snapshot(database)


async def test_concurrent_up_applies_each_migration_once(databases: DatabaseFactory) -> None:
    """Two runners on separate handles, released at once, apply each migration exactly once."""
    schema = unique("ct_mig_")
    first, second = await databases.open(schema), await databases.open(schema)
    runners = [make_migrator(handle, "chat_service") for handle in (first, second)]
    versions = [m.version for m in runners[0].migrations]
    async with migration_lock_held(databases, schema):
        runs = [asyncio.create_task(runner.up()) for runner in runners]
        await asyncio.sleep(0.3)  # both runners are now waiting on the lock
    applied = await asyncio.gather(*runs)

    assert versions == sorted(applied[0] + applied[1])
    rows = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [r["version"] for r in rows]


async def test_failed_migration_leaves_nothing_half_applied(
    database: Database, make_package: Callable[..., str]
) -> None:
    """A migration failing after its first statement is rolled back whole; earlier ones stay."""
    package = make_package(
        {
            "0001_base": ("CREATE TABLE base (id INTEGER PRIMARY KEY);\n", "DROP TABLE base;\n"),
            "0002_broken": (
                "CREATE TABLE partial (id INTEGER PRIMARY KEY);\nINSERT INTO missing VALUES (1);\n",
                "DROP TABLE partial;\n",
            ),
        }
    )
    migrator = make_migrator(database, package)

    with pytest.raises(MigrationError, match=r"0002_broken\.up\.sql failed"):
        await migrator.up()
    assert {"schema_migrations", "base"} == await tables(database)
    assert [True, False] == [s.applied for s in await migrator.status()]


async def test_up_to_target_and_down_by_steps(
    database: Database, make_package: Callable[..., str]
) -> None:
    """``up(target)`` stops at the target; ``down(steps)`` reverts newest first."""
    migrator = make_migrator(database, make_package(THREE_TABLES))

    assert [1, 2] == await migrator.up(target=2)
    assert [3] == await migrator.up()
    assert [3] == await migrator.down()
    assert [2, 1] == await migrator.down(steps=5)
    assert [] == await migrator.down()
    assert {"schema_migrations"} == await tables(database)


async def test_status_on_fresh_database_creates_nothing(
    database: Database, make_package: Callable[..., str]
) -> None:
    """``status`` and ``down`` before any ``up`` report nothing applied and write nothing."""
    migrator = make_migrator(database, make_package(THREE_TABLES))

    assert [False, False, False] == [s.applied for s in await migrator.status()]
    assert [] == await migrator.down_to(0)
    assert set() == await tables(database)


async def test_up_refuses_history_with_another_name(
    database: Database, make_package: Callable[..., str]
) -> None:
    """A version applied under another name (two branches both added it) stops ``up``."""
    await make_migrator(database, make_package(THREE_TABLES)).up(target=1)
    renamed = make_package(
        {"0001_uno": THREE_TABLES["0001_one"], "0002_two": THREE_TABLES["0002_two"]}
    )

    with pytest.raises(MigrationError, match="0001 was applied as 'one'"):
        await make_migrator(database, renamed).up()


async def test_up_rejects_target_beyond_latest(
    database: Database, make_package: Callable[..., str]
) -> None:
    """Asking for a version the package does not ship fails before touching the database."""
    with pytest.raises(MigrationError, match=r"outside 0\.\.3"):
        await make_migrator(database, make_package(THREE_TABLES)).up(target=4)
    assert set() == await tables(database)


async def columns_by_table(database: Database) -> dict[str, list[tuple[str, bool]]]:
    """Each table's (column, NOT NULL) pairs in declaration order."""
    result: dict[str, list[tuple[str, bool]]] = {}
    for table in sorted(await tables(database)):
        if database.dialect == "postgres":
            rows: list[Any] = await database.fetch(
                "SELECT column_name AS name, is_nullable = 'NO' AS required"
                " FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                database.schema,
                table,
            )
        else:
            rows = await database.fetch(
                'SELECT name, "notnull" OR pk > 0 AS required'
                " FROM pragma_table_info($1) ORDER BY cid",
                table,
            )
        result[table] = [(str(r["name"]), bool(r["required"])) for r in rows]
    return result


@pytest.mark.parametrize("service", SERVICES)
async def test_dialects_define_the_same_columns(tmp_path: Path, service: str) -> None:
    """PostgreSQL and SQLite schemas have the same tables, columns, order and nullability."""
    postgres, sqlite = DatabaseFactory("postgres", tmp_path), DatabaseFactory("sqlite", tmp_path)
    await postgres.check_reachable()
    try:
        pg, lite = await postgres.open(), await sqlite.open()
        await make_migrator(pg, service).up()
        await make_migrator(lite, service).up()

        assert await columns_by_table(pg) == await columns_by_table(lite)
    finally:
        await postgres.cleanup()
        await sqlite.cleanup()
