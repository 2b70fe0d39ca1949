"""Edit and delete transactions on PostgreSQL and SQLite, with a controlled clock."""

from __future__ import annotations

import asyncio

import pytest

from chat_service.adapters.deletes import DeleteStore
from chat_service.adapters.edits import EditStore
from chat_service.adapters.membership import MembershipStore
from chat_service.adapters.messages import MessageStore
from chat_service.domain.model import Body, BodyKind, Outgoing, SendResult
from svckit.errors import DomainError
from svckit.ports import Database

from .conftest import DatabaseFactory
from .test_chat_outbox import ALICE, BOB, actor, item, migrated

WINDOW_MS = 60_000


async def unread(db: Database, chat_id: int, user_id: int) -> int:
    return int(
        await db.fetchval(
            "SELECT unread_count FROM chat_members WHERE chat_id = $1 AND user_id = $2",
            chat_id,
            user_id,
        )
    )


async def sent_chat(db: Database, count: int) -> tuple[int, list[SendResult]]:
    """A direct chat ALICE -> BOB with ``count`` messages sent at t=2000 ms."""
    chat_id, *_ = await MembershipStore(db).create_direct(actor(ALICE), BOB)
    items = [item(chat_id, f"c{i}", f"m{i}") for i in range(count)]
    outcomes = await MessageStore(db).send([Outgoing(ALICE, "s", i) for i in items], 2_000, "")
    return chat_id, [o for o in outcomes if isinstance(o, SendResult)]


async def test_edit_window_is_enforced(databases: DatabaseFactory) -> None:
    """An edit at the window's last millisecond succeeds; one after it is EDIT_WINDOW_EXPIRED."""
    db = await migrated(databases)
    chat_id, [sent] = await sent_chat(db, 1)
    edits, body = EditStore(db), Body(BodyKind.TEXT, text="late")
    on_time = await edits.edit(
        actor(ALICE, 2_000 + WINDOW_MS), chat_id, sent.message_id, body, WINDOW_MS
    )
    assert 1 == on_time.pts_count
    with pytest.raises(DomainError) as info:
        later = actor(ALICE, 2_001 + WINDOW_MS)
        await edits.edit(later, chat_id, sent.message_id, Body(BodyKind.TEXT, text="x"), WINDOW_MS)
    assert "EDIT_WINDOW_EXPIRED" == info.value.reason


async def test_concurrent_deletes_count_once(databases: DatabaseFactory) -> None:
    """Racing deletes of the same messages (for everyone and for oneself) log one update
    each at most and lower the unread count once per message."""
    db = await migrated(databases)
    chat_id, sent = await sent_chat(db, 3)
    store, ids = DeleteStore(db), [s.message_id for s in sent[:2]]
    results = await asyncio.gather(
        store.delete(actor(ALICE, 3_000), chat_id, ids, True),
        store.delete(actor(ALICE, 3_000), chat_id, ids, True),
        store.delete(actor(BOB, 3_000), chat_id, ids, False),
    )
    assert 1 == sum(r.pts_count for r in results[:2])
    assert 1 == await unread(db, chat_id, BOB)
    body = await db.fetchval("SELECT body_text FROM messages WHERE id = $1", ids[0])
    assert body is None


async def test_deleting_for_me_then_for_everyone_lowers_unread_once(
    databases: DatabaseFactory,
) -> None:
    """A message BOB hid no longer counts, so ALICE deleting it leaves BOB's count alone."""
    db = await migrated(databases)
    chat_id, sent = await sent_chat(db, 2)
    store = DeleteStore(db)
    await store.delete(actor(BOB, 3_000), chat_id, [sent[0].message_id], False)
    assert 1 == await unread(db, chat_id, BOB)
    await store.delete(actor(ALICE, 3_000), chat_id, [sent[0].message_id], True)
    assert 1 == await unread(db, chat_id, BOB)
    kinds = await db.fetch("SELECT kind FROM updates WHERE user_id = $1 ORDER BY pts", BOB)
    assert [9, 4, 4, 6, 6] == [r["kind"] for r in kinds]
