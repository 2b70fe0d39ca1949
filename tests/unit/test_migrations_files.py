"""The shipped migration files are well formed, and the loader rejects malformed ones."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from svckit.migrations import MigrationError, load_migrations, split_sqlite_statements

SERVICES = ("auth_service", "chat_service", "presence_service")
DIALECTS = ("postgres", "sqlite")


def _created_objects(statements: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (kind, name) of every table and index the statements create, in order."""
    pattern = re.compile(r"CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX)\s+(\w+)", re.IGNORECASE)
    return [(kind.upper(), name) for text in statements for kind, name in pattern.findall(text)]


def _dropped_tables(statements: tuple[str, ...]) -> list[str]:
    pattern = re.compile(r"DROP\s+TABLE\s+(\w+)", re.IGNORECASE)
    return [name for text in statements for name in pattern.findall(text)]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("service", SERVICES)
def test_service_ships_contiguous_paired_migrations(service: str, dialect: str) -> None:
    """Every service ships migrations numbered 1..n, each with an up and a down; one may
    be empty in one dialect (a PostgreSQL-only setting such as a fillfactor), never in both."""
    migrations = load_migrations(service, dialect)  # type: ignore[arg-type]
    assert list(range(1, len(migrations) + 1)) == [m.version for m in migrations]
    other = {m.version: m for m in load_migrations(service, _other(dialect))}  # type: ignore[arg-type]
    assert all((m.up and m.down) or (other[m.version].up and other[m.version].down)
               for m in migrations)  # fmt: skip


def _other(dialect: str) -> str:
    return "sqlite" if dialect == "postgres" else "postgres"


@pytest.mark.parametrize("service", SERVICES)
def test_dialects_list_same_versions_and_names(service: str) -> None:
    """PostgreSQL and SQLite ship the same migration versions under the same names."""
    postgres = [(m.version, m.name) for m in load_migrations(service, "postgres")]
    sqlite = [(m.version, m.name) for m in load_migrations(service, "sqlite")]
    assert postgres == sqlite


@pytest.mark.parametrize("service", SERVICES)
def test_dialects_create_same_tables_and_indexes(service: str) -> None:
    """Each migration creates the same tables and named indexes on both engines."""
    pairs = zip(
        load_migrations(service, "postgres"), load_migrations(service, "sqlite"), strict=True
    )
    for postgres, sqlite in pairs:
        assert _created_objects(postgres.up) == _created_objects(sqlite.up)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("service", SERVICES)
def test_down_drops_what_up_created_in_reverse(service: str, dialect: str) -> None:
    """Each down file drops exactly the tables its up file creates, newest first."""
    for migration in load_migrations(service, dialect):  # type: ignore[arg-type]
        created = [name for kind, name in _created_objects(migration.up) if kind == "TABLE"]
        assert created[::-1] == _dropped_tables(migration.down)


def test_split_keeps_semicolons_inside_strings_comments_and_triggers() -> None:
    """The SQLite splitter ends statements only where SQLite's tokenizer says they end."""
    text = (
        "-- header; not a statement\n"
        "CREATE TABLE a (x TEXT DEFAULT 'one;\n two');\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
        "  DELETE FROM a WHERE x = 'z';\n"
        "END;\n"
        "\n"
        "CREATE INDEX a_x ON a (x); -- trailing note\n"
        "-- footer\n"
    )
    statements = split_sqlite_statements(text)
    assert 3 == len(statements)
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_split_rejects_unterminated_statement() -> None:
    """A statement without a final semicolon is an error, not silently dropped."""
    with pytest.raises(MigrationError, match="not terminated"):
        split_sqlite_statements("CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER)\n")


def _make_package(root: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Create an importable package holding ``migrations/sqlite/<files>``; return its name."""
    name = f"migfiles_{uuid.uuid4().hex[:12]}"
    directory = root / name / "migrations" / "sqlite"
    directory.mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    for file_name, text in files.items():
        (directory / file_name).write_text(text)
    monkeypatch.syspath_prepend(str(root))
    return name


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.up.sql": "SELECT 1;\n"}, r"0001_a\.up\.sql has no 0001_a\.down\.sql"),
        ({"0001_a.down.sql": "SELECT 1;\n"}, r"0001_a\.down\.sql has no 0001_a\.up\.sql"),
        (
            {
                "0001_a.up.sql": "",
                "0001_a.down.sql": "",
                "0003_c.up.sql": "",
                "0003_c.down.sql": "",
            },
            r"contiguous from 0001; found 0001, 0003 \(missing 0002\)",
        ),
        ({"0002_b.up.sql": "", "0002_b.down.sql": ""}, r"found 0002 \(missing 0001\)"),
        (
            {
                "0001_a.up.sql": "",
                "0001_a.down.sql": "",
                "0001_b.up.sql": "",
                "0001_b.down.sql": "",
            },
            r"two migrations numbered 0001",
        ),
        ({"1_a.up.sql": ""}, r"expected a name like 0001_short_name\.up\.sql"),
        ({"0001_Bad-Name.up.sql": ""}, r"expected a name like"),
        ({"0001_a.up.sql": "SELECT 1\n", "0001_a.down.sql": ""}, r"not terminated"),
    ],
)
def test_loader_rejects_malformed_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], message: str
) -> None:
    """Unpaired, non-contiguous, duplicate or badly named files fail with a clear message."""
    package = _make_package(tmp_path, files, monkeypatch)
    with pytest.raises(MigrationError, match=message):
        load_migrations(package, "sqlite")


def test_loader_rejects_missing_dialect_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package without migrations for the dialect names the directory it looked for."""
    package = _make_package(tmp_path, {}, monkeypatch)
    with pytest.raises(
        MigrationError, match=f"no migrations directory {package}/migrations/postgres/"
    ):
        load_migrations(package, "postgres")


def test_loader_ignores_non_sql_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``__init__.py`` and other non-SQL files next to the migrations are not migrations."""
    files = {"__init__.py": "", "README.md": "notes", "0001_a.up.sql": "", "0001_a.down.sql": ""}
    package = _make_package(tmp_path, files, monkeypatch)
    assert [1] == [m.version for m in load_migrations(package, "sqlite")]
