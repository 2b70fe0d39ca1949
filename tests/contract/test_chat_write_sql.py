"""The write path's SQL port: one implementation per dialect, the same behaviour on both.

Each step is called directly (inside one transaction) on PostgreSQL and SQLite; the
send-level behaviour built on them is pinned by test_chat_group_commit.py.
"""

from __future__ import annotations

from chat_service.adapters.membership import Actor, MembershipStore
from chat_service.adapters.sql_postgres import PostgresWriteSql
from chat_service.adapters.sql_sqlite import SqliteWriteSql
from chat_service.adapters.write_sql import ChatLock, write_sql_for
from chat_service.domain.send_plan import SenderRead
from svckit.migrations import Migrator
from svckit.ports import Database

from .conftest import DatabaseFactory

ANN, BOB, CAT, DAN = 11, 22, 33, 44


async def two_chats(databases: DatabaseFactory) -> tuple[Database, int, int]:
    """A migrated database with a direct chat (ANN, BOB) and a group (CAT, ANN, BOB)."""
    db = await databases.open()
    await Migrator(db, "chat_service").up()
    rooms = MembershipStore(db)
    direct, *_ = await rooms.create_direct(Actor(ANN, "s", 1_000, "rid"), BOB)
    group, *_ = await rooms.create_group(Actor(CAT, "s", 1_000, "rid"), "g", [CAT, ANN, BOB], "")
    return db, direct, group


async def test_the_implementation_is_the_databases_dialect(databases: DatabaseFactory) -> None:
    """Each dialect gets its own implementation, chosen from ``db.dialect``."""
    db = await databases.open()
    expected = PostgresWriteSql if db.dialect == "postgres" else SqliteWriteSql
    assert expected is type(write_sql_for(db.dialect))


async def test_seqs_are_taken_only_where_a_sender_belongs(databases: DatabaseFactory) -> None:
    """lock_chats takes seqs in the chats one of whose senders is a member, raises their
    activity, and leaves the others alone; give_back_seqs hands seqs back."""
    db, direct, group = await two_chats(databases)
    sql = write_sql_for(db.dialect)
    async with db.transaction() as tx:
        wants = [ChatLock(group, 3, (CAT, DAN)), ChatLock(direct, 2, (DAN,))]
        rows = await sql.lock_chats(tx, wants, 5_000)
        assert [group] == list(rows)
        assert (3, 5_000) == (int(rows[group]["last_seq"]), int(rows[group]["last_activity_ms"]))
        await sql.give_back_seqs(tx, group, 1)
    assert 2 == await db.fetchval("SELECT last_seq FROM chats WHERE id = $1", group)
    assert 0 == await db.fetchval("SELECT last_seq FROM chats WHERE id = $1", direct)


async def test_prepare_send_counts_unread_sets_senders_marks_and_bumps_pts(
    databases: DatabaseFactory,
) -> None:
    """Every member's unread grows by the chat's count except the senders', whose unread
    and watermark are set; pts counters grow by their counts; fresh ids ascend."""
    db, _, group = await two_chats(databases)
    sql = write_sql_for(db.dialect)
    async with db.transaction() as tx:
        assert [(group, ANN, 0), (group, BOB, 0), (group, CAT, 0)] == await sql.chat_members(
            tx, [group]
        )
        before = await sql.bump_pts(tx, {ANN: 0, BOB: 0, CAT: 0})
        prepared = await sql.prepare_send(
            tx, {group: 2}, [SenderRead(group, CAT, 0, 2)], {ANN: 2, BOB: 2, CAT: 2}, 2
        )
    assert [(group, ANN, 2), (group, BOB, 2), (group, CAT, 0)] == prepared.unread
    assert {u: before[u] + 2 for u in (ANN, BOB, CAT)} == prepared.last_pts
    assert 2 == len(prepared.message_ids)
    assert prepared.message_ids == sorted(prepared.message_ids)
    assert 2 == await db.fetchval(
        "SELECT read_inbox_seq FROM chat_members WHERE chat_id = $1 AND user_id = $2", group, CAT
    )
