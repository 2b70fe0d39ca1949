"""Plain-SQL schema migrations, applied through the storage port.

Each service ships its schema as numbered SQL files inside its package::

    <package>/migrations/<dialect>/0001_short_name.up.sql
    <package>/migrations/<dialect>/0001_short_name.down.sql

``<dialect>`` is ``postgres`` or ``sqlite`` (``Database.dialect``); both dialects list the same
versions and names. Versions are contiguous from 0001 and every up file has a down file.
The applied versions are recorded in ``schema_migrations`` inside the service's own schema.

We do not use alembic or yoyo: both drive migrations through synchronous DB-API drivers,
while every service talks to storage through the async ``Database`` port (asyncpg,
aiosqlite). A migration here is just SQL run on that port, so ``minitg migrate`` and the
embedded start-up path use the very connection settings (schema, search_path) the
service uses.

Rules for the SQL files:

* Each migration and its ``schema_migrations`` row commit in one transaction, so a failing
  migration leaves nothing behind. Hence no statement that refuses to run inside a
  transaction (PostgreSQL ``CREATE INDEX CONCURRENTLY``, ``VACUUM``; SQLite ``VACUUM``,
  ``PRAGMA journal_mode``).
* Table names are unqualified: the handle's schema (PostgreSQL ``search_path``) or file
  (SQLite) decides where they go.
* PostgreSQL files run as one multi-statement text. The SQLite driver runs one statement
  per call, so a SQLite file is split where SQLite's own ``sqlite3_complete`` says a
  statement ends at the end of a line: semicolons inside strings, comments and trigger
  bodies are safe, but a statement must end at a line end (never two on one line).

Concurrent runners (several pods starting together) are safe: each step takes
``pg_advisory_xact_lock(hashtext('minitg.migrate.' || schema))`` (SQLite: the write lock)
inside its transaction and re-reads the current version before applying anything.
"""

from __future__ import annotations

import importlib.resources
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Literal

from svckit.ports import Database, Dialect, Executor

Direction = Literal["up", "down"]

_FILE_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.(?P<direction>up|down)\.sql$"
)

# Per schema, so services migrating side by side do not wait for each other.
_PG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('minitg.migrate.' || $1))"

_CREATE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version        INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    applied_at_ms  BIGINT NOT NULL
)
"""


class MigrationError(Exception):
    """The migration files are malformed, or applying or reverting one failed."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration: the statements to apply it and to revert it."""

    version: int
    name: str
    up: tuple[str, ...]
    down: tuple[str, ...]

    @property
    def label(self) -> str:
        """The file stem shared by the up and down files, e.g. ``0001_accounts``."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Whether one migration is applied, and since when (Unix ms)."""

    version: int
    name: str
    applied: bool
    applied_at_ms: int | None


def load_migrations(package: str, dialect: Dialect) -> tuple[Migration, ...]:
    """Read and check ``<package>/migrations/<dialect>/``; return the migrations in order."""
    where = f"{package}/migrations/{dialect}/"
    try:
        directory = importlib.resources.files(package) / "migrations" / dialect
    except ModuleNotFoundError as exc:
        raise MigrationError(f"cannot import package {package!r} to read {where}") from exc
    if not directory.is_dir():
        raise MigrationError(f"no migrations directory {where}")
    texts = _read_files(directory, where)
    names = _check_versions(texts, where)
    return tuple(
        Migration(
            version=version,
            name=names[version],
            up=_statements(texts[version, "up"][1], dialect, where),
            down=_statements(texts[version, "down"][1], dialect, where),
        )
        for version in sorted(names)
    )


def _read_files(directory: Traversable, where: str) -> dict[tuple[int, str], tuple[str, str]]:
    """Map (version, direction) to (name, SQL text) for every ``.sql`` file."""
    texts: dict[tuple[int, str], tuple[str, str]] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"{where}{entry.name}: expected a name like 0001_short_name.up.sql "
                "or 0001_short_name.down.sql (lowercase, digits, underscores)"
            )
        version, name = int(match["version"]), match["name"]
        key = (version, match["direction"])
        if key in texts:
            raise MigrationError(
                f"{where}: two migrations numbered {version:04d}: {texts[key][0]!r}, {name!r}"
            )
        texts[key] = (name, entry.read_text(encoding="utf-8"))
    return texts


def _check_versions(texts: dict[tuple[int, str], tuple[str, str]], where: str) -> dict[int, str]:
    """Check pairing and numbering; return the name of each version."""
    names: dict[int, str] = {}
    for (version, direction), (name, _) in sorted(texts.items()):
        other = "down" if direction == "up" else "up"
        partner = texts.get((version, other))
        if partner is None:
            raise MigrationError(
                f"{where}{version:04d}_{name}.{direction}.sql has no "
                f"{version:04d}_{name}.{other}.sql (every up needs a down)"
            )
        if partner[0] != name:
            raise MigrationError(
                f"{where}: two migrations numbered {version:04d}: {name!r}, {partner[0]!r}"
            )
        names[version] = name
    expected = list(range(1, len(names) + 1))
    if sorted(names) != expected:
        found = ", ".join(f"{v:04d}" for v in sorted(names))
        missing = ", ".join(f"{v:04d}" for v in expected if v not in names)
        raise MigrationError(
            f"{where}: versions must be contiguous from 0001; found {found} (missing {missing})"
        )
    return names


def _statements(text: str, dialect: Dialect, where: str) -> tuple[str, ...]:
    """PostgreSQL runs the whole file at once; SQLite gets it statement by statement."""
    if dialect == "postgres":
        return (text,) if text.strip() else ()
    try:
        return tuple(split_sqlite_statements(text))
    except MigrationError as exc:
        raise MigrationError(f"{where}: {exc}") from None


def split_sqlite_statements(text: str) -> list[str]:
    """Split SQL text into statements at line ends where a complete statement ends.

    ``sqlite3.complete_statement`` is SQLite's own tokenizer, so a semicolon inside a
    string, a comment or a trigger body does not end a statement. Text left after the last
    statement may only be comments and blank lines.
    """
    statements: list[str] = []
    pending = ""
    for line in text.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [
        line for line in pending.splitlines() if line.strip() and not line.strip().startswith("--")
    ]
    if leftover:
        raise MigrationError(f"statement not terminated by ';' at a line end: {leftover[0]!r}")
    return statements


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Migrator:
    """Applies and reverts one service's migrations on the schema ``db`` is bound to."""

    def __init__(
        self, db: Database, package: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._clock = clock
        self.package = package
        self.migrations = load_migrations(package, db.dialect)

    @property
    def latest_version(self) -> int:
        """The highest version the package ships (0 when it ships none)."""
        return len(self.migrations)

    async def applied_version(self) -> int:
        """The newest applied version (0 for a schema never migrated)."""
        if not await self._has_bookkeeping():
            return 0
        return await self._current_version(self._db)

    async def is_current(self) -> bool:
        """True when the database has every migration this code ships (or newer ones):
        the readiness check, since the code's SQL needs the tables they create."""
        return await self.applied_version() >= self.latest_version

    async def up(self, target: int | None = None) -> list[int]:
        """Apply pending migrations in order up to ``target`` (default: all).

        Return the versions this call applied; a database already at or beyond
        ``target`` (including one migrated by newer code) is left alone.
        """
        goal = self.latest_version if target is None else target
        if not 0 <= goal <= self.latest_version:
            raise MigrationError(f"{self.package}: target {goal} outside 0..{self.latest_version}")
        await self._ensure_bookkeeping()
        await self._check_history()
        applied: list[int] = []
        while (version := await self._step_up(goal)) is not None:
            applied.append(version)
        return applied

    async def down(self, steps: int = 1) -> list[int]:
        """Revert the last ``steps`` applied migrations; return their versions, newest first."""
        if steps < 0:
            raise MigrationError(f"{self.package}: steps must be >= 0, got {steps}")
        if not await self._has_bookkeeping():
            return []
        current = await self._current_version(self._db)
        return await self.down_to(max(current - steps, 0))

    async def down_to(self, version: int) -> list[int]:
        """Revert migrations until ``version`` is the newest applied (0: revert all)."""
        if version < 0:
            raise MigrationError(f"{self.package}: version must be >= 0, got {version}")
        if not await self._has_bookkeeping():
            return []
        await self._check_history()
        reverted: list[int] = []
        while (reverted_version := await self._step_down(version)) is not None:
            reverted.append(reverted_version)
        return reverted

    async def status(self) -> list[MigrationStatus]:
        """Every known migration and whether it is applied, plus applied unknown ones."""
        rows = await self._applied_rows() if await self._has_bookkeeping() else {}
        result = [
            MigrationStatus(
                m.version, m.name, m.version in rows, rows.get(m.version, ("", None))[1]
            )
            for m in self.migrations
        ]
        result.extend(
            MigrationStatus(version, name, True, applied_at_ms)
            for version, (name, applied_at_ms) in sorted(rows.items())
            if version > self.latest_version
        )
        return result

    async def _step_up(self, goal: int) -> int | None:
        """Apply the next migration in its own transaction, unless another runner did."""
        async with self._db.transaction() as tx:
            current = await self._lock_and_read(tx)
            if current >= goal:
                return None
            migration = self.migrations[current]
            await self._run(tx, migration, "up")
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                int(self._clock() * 1000),
            )
            return migration.version

    async def _step_down(self, floor: int) -> int | None:
        """Revert the newest applied migration in its own transaction, if above ``floor``."""
        async with self._db.transaction() as tx:
            current = await self._lock_and_read(tx)
            if current <= floor:
                return None
            if current > self.latest_version:
                raise MigrationError(
                    f"{self.package}: the database is at version {current:04d} but this code "
                    f"only ships up to {self.latest_version:04d}; revert it with newer code"
                )
            migration = self.migrations[current - 1]
            await self._run(tx, migration, "down")
            await tx.execute("DELETE FROM schema_migrations WHERE version = $1", current)
            return current

    async def _run(self, tx: Executor, migration: Migration, direction: Direction) -> None:
        statements = migration.up if direction == "up" else migration.down
        try:
            for statement in statements:
                await tx.execute(statement)
        except Exception as exc:
            raise MigrationError(
                f"{self.package}: {migration.label}.{direction}.sql failed "
                f"({type(exc).__name__}: {exc}); its transaction was rolled back"
            ) from exc

    async def _lock_and_read(self, tx: Executor) -> int:
        """Serialise runners on this schema, then read the current version."""
        if self._db.dialect == "postgres":
            await tx.execute(_PG_LOCK, self._db.schema)
        else:
            # A write that changes nothing still takes SQLite's write lock, so the version
            # read below cannot go stale before this transaction commits.
            await tx.execute("UPDATE schema_migrations SET version = version WHERE 0")
        return await self._current_version(tx)

    @staticmethod
    async def _current_version(executor: Executor) -> int:
        value = await executor.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(value)

    async def _ensure_bookkeeping(self) -> None:
        """Create the service schema (PostgreSQL) and ``schema_migrations`` if missing."""
        async with self._db.transaction() as tx:
            if self._db.dialect == "postgres":
                await tx.execute(_PG_LOCK, self._db.schema)
                await self._ensure_schema(tx)
            await tx.execute(_CREATE_BOOKKEEPING)

    async def _ensure_schema(self, tx: Executor) -> None:
        """Create the schema if missing and check that unqualified names land in it.

        Existence is checked first because ``CREATE SCHEMA IF NOT EXISTS`` still demands
        CREATE on the database, which a restricted role given a ready schema lacks.
        """
        schema = self._db.schema
        if not await tx.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await tx.execute(f"CREATE SCHEMA {_quote_identifier(schema)}")
        current = await tx.fetchval("SELECT current_schema()")
        if current != schema:
            raise MigrationError(
                f"{self.package}: unqualified tables would be created in {current!r}, not in "
                f"{schema!r}; the handle's search_path must start with the service schema"
            )

    async def _has_bookkeeping(self) -> bool:
        if self._db.dialect == "postgres":
            found = await self._db.fetchval(
                "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations'",
                self._db.schema,
            )
        else:
            found = await self._db.fetchval(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            )
        return found is not None

    async def _applied_rows(self) -> dict[int, tuple[str, int | None]]:
        rows = await self._db.fetch(
            "SELECT version, name, applied_at_ms FROM schema_migrations ORDER BY version"
        )
        return {int(r["version"]): (str(r["name"]), int(r["applied_at_ms"])) for r in rows}

    async def _check_history(self) -> None:
        """Refuse to run when an applied version has another name than the file.

        That happens when two branches both added, say, 0002: the database holds one of
        them and the code the other, and applying 0003 on top would be a guess.
        """
        for version, (name, _) in (await self._applied_rows()).items():
            if version <= self.latest_version and self.migrations[version - 1].name != name:
                raise MigrationError(
                    f"{self.package}: version {version:04d} was applied as {name!r} but "
                    f"this code names it {self.migrations[version - 1].name!r}"
                )
