"""Migration 0002 of the auth schema backfills email_key and makes it the unique key."""

from __future__ import annotations

import pytest

from svckit.migrations import Migrator
from svckit.ports import Database, UniqueViolation


async def test_backfill_lowers_existing_addresses_and_key_is_unique(database: Database) -> None:
    """Rows written under 0001 get lower(email) as their key; a second row with the same key
    is refused; down removes the column and keeps the rows."""
    migrator = Migrator(database, "auth_service")
    await migrator.up(target=1)
    for email in ("Ann@Example.org", "bob@example.org"):
        await database.execute(
            "INSERT INTO users (email, display_name, password_hash, created_at_ms) "
            "VALUES ($1, 'x', 'h', 1)",
            email,
        )
    await migrator.up()
    rows = await database.fetch("SELECT email, email_key FROM users ORDER BY email_key")
    assert [("Ann@Example.org", "ann@example.org"), ("bob@example.org", "bob@example.org")] == [
        (r["email"], r["email_key"]) for r in rows
    ]
    with pytest.raises(UniqueViolation):
        await database.execute(
            "INSERT INTO users (email, email_key, display_name, password_hash, created_at_ms) "
            "VALUES ('Ärger@x.org', 'ann@example.org', 'x', 'h', 1)"
        )
    await migrator.down()
    assert 2 == await database.fetchval("SELECT COUNT(*) FROM users")
