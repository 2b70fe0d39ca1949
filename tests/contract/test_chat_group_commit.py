"""Group commit: one send transaction carrying several senders' messages (a gateway batch).

Runs the real SQL on PostgreSQL and SQLite. Each test checks what a batch must keep from
single sends: seqs in request order and gapless, every member's pts gapless, unread counts
and read watermarks as if the sends had come one by one, per-sender idempotency, and
non-members refused without leaving a gap.
"""

from __future__ import annotations

import asyncio

from minitg.chat.v1 import updates_pb2

from chat_service.adapters.membership import Actor, MembershipStore
from chat_service.adapters.messages import MessageStore
from chat_service.domain.errors import ChatNotFound, ClientMsgIdReused
from chat_service.domain.model import Body, BodyKind, Outgoing, SendItem, SendResult
from svckit.migrations import Migrator
from svckit.ports import Database

from .conftest import DatabaseFactory

ANN, BOB, CAT, DAN = 11, 22, 33, 44


async def migrated(databases: DatabaseFactory) -> Database:
    db = await databases.open()
    await Migrator(db, "chat_service").up()
    return db


def actor(user_id: int) -> Actor:
    return Actor(user_id, f"s{user_id}", 1_000, "rid")


def send(user_id: int, chat_id: int, cmid: str, text: str | None = None) -> Outgoing:
    body = Body(BodyKind.TEXT, text=text or cmid)
    return Outgoing(user_id, f"s{user_id}", SendItem(chat_id, cmid, body))


async def member_state(db: Database, chat_id: int, user_id: int) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT unread_count, read_inbox_seq FROM chat_members WHERE chat_id = $1 AND user_id = $2",
        chat_id,
        user_id,
    )
    assert row is not None
    return int(row["unread_count"]), int(row["read_inbox_seq"])


async def logged(db: Database, user_id: int, chat_id: int) -> list[updates_pb2.Update]:
    rows = await db.fetch(
        "SELECT payload FROM updates WHERE user_id = $1 AND chat_id = $2 AND kind = 4 ORDER BY pts",
        user_id,
        chat_id,
    )
    return [updates_pb2.Update.FromString(bytes(r["payload"])) for r in rows]


async def test_a_mixed_batch_keeps_order_unread_and_watermarks(databases: DatabaseFactory) -> None:
    """Two senders interleaved in a direct chat and a group, one batch: as if sent one by one."""
    db = await migrated(databases)
    rooms = MembershipStore(db)
    direct, *_ = await rooms.create_direct(actor(ANN), BOB)
    group, *_ = await rooms.create_group(actor(CAT), "g", [CAT, ANN, BOB], "")
    outcomes = await MessageStore(db).send(
        [
            send(ANN, direct, "a1"),
            send(BOB, direct, "b1"),
            send(CAT, group, "c1"),
            send(ANN, direct, "a2"),
            send(BOB, group, "b2"),
        ],
        2_000,
        "rid-batch",
    )
    results = [o for o in outcomes if isinstance(o, SendResult)]
    assert len(results) == 5
    assert [1, 2, 1, 3, 2] == [r.seq for r in results]
    # Ann sent last in the direct chat: nothing unread, watermark at her message 3.
    assert (0, 3) == await member_state(db, direct, ANN)
    # Bob: his own message 2 read, Ann's message 3 after it unread.
    assert (1, 2) == await member_state(db, direct, BOB)
    # The group: Bob sent its last message, Cat has Bob's unread, Ann both.
    assert (0, 2) == await member_state(db, group, BOB)
    assert (1, 1) == await member_state(db, group, CAT)
    assert (2, 0) == await member_state(db, group, ANN)
    # The unread counts in the logged updates are the counts right after each message.
    bob_view = await logged(db, BOB, direct)
    assert [1, 0, 1] == [u.new_message.unread_count for u in bob_view]
    assert ["", "b1", ""] == [u.new_message.message.client_msg_id for u in bob_view]
    ann_view = await logged(db, ANN, direct)
    assert [0, 1, 0] == [u.new_message.unread_count for u in ann_view]
    for user_id in (ANN, BOB, CAT):  # every member's log is gapless from 1
        pts = await db.fetch("SELECT pts FROM updates WHERE user_id = $1 ORDER BY pts", user_id)
        assert list(range(1, len(pts) + 1)) == [int(r["pts"]) for r in pts]


async def test_non_members_are_refused_without_a_gap(databases: DatabaseFactory) -> None:
    """A non-member's item is CHAT_NOT_FOUND, alone or among members' items; seqs stay 1..n."""
    db = await migrated(databases)
    direct, *_ = await MembershipStore(db).create_direct(actor(ANN), BOB)
    store = MessageStore(db)
    mixed = await store.send(
        [send(DAN, direct, "d1"), send(ANN, direct, "a1"), send(DAN, direct, "d2")], 2_000, ""
    )
    assert [ChatNotFound, SendResult, ChatNotFound] == [type(o) for o in mixed]
    alone = await store.send([send(DAN, direct, "d3")], 2_100, "")
    assert [ChatNotFound] == [type(o) for o in alone]
    [later] = await store.send([send(BOB, direct, "b1")], 2_200, "")
    assert isinstance(later, SendResult)
    assert 2 == later.seq
    assert 2 == await db.fetchval("SELECT last_seq FROM chats WHERE id = $1", direct)


async def test_idempotency_is_per_sender(databases: DatabaseFactory) -> None:
    """The same client_msg_id from two senders is two messages; a repeated batch is answered
    from the stored results; a reuse with another body is CLIENT_MSG_ID_REUSED."""
    db = await migrated(databases)
    direct, *_ = await MembershipStore(db).create_direct(actor(ANN), BOB)
    store = MessageStore(db)
    batch = [send(ANN, direct, "same"), send(BOB, direct, "same")]
    first = await store.send(batch, 2_000, "")
    again = await store.send(batch, 2_500, "")
    assert first == again
    assert [1, 2] == [getattr(o, "seq", None) for o in first]
    [reused] = await store.send([send(BOB, direct, "same", text="other")], 2_600, "")
    assert isinstance(reused, ClientMsgIdReused)
    twins = await store.send([send(ANN, direct, "t"), send(ANN, direct, "t")], 2_700, "")
    assert twins[0] == twins[1]


async def test_concurrent_batches_of_many_senders_stay_gapless(
    databases: DatabaseFactory,
) -> None:
    """Concurrent multi-sender batches on shared chats: seqs 1..n per chat, pts 1..n per user."""
    db = await migrated(databases)
    rooms = MembershipStore(db)
    group, *_ = await rooms.create_group(actor(ANN), "g", [ANN, BOB, CAT, DAN], "")
    direct, *_ = await rooms.create_direct(actor(BOB), CAT)
    store = MessageStore(db)

    def batch(n: int) -> list[Outgoing]:
        return [
            send(ANN, group, f"a{n}"),
            send(BOB, direct, f"b{n}"),
            send(CAT, group, f"c{n}"),
            send(CAT, direct, f"d{n}"),
        ]

    outcomes = await asyncio.gather(*(store.send(batch(n), 3_000, "") for n in range(10)))
    assert all(isinstance(o, SendResult) for batch_outcomes in outcomes for o in batch_outcomes)
    for chat_id in (group, direct):
        seqs = await db.fetch("SELECT seq FROM messages WHERE chat_id = $1 ORDER BY seq", chat_id)
        assert list(range(1, 21)) == [int(r["seq"]) for r in seqs]
    for user_id in (ANN, BOB, CAT, DAN):
        pts = await db.fetch("SELECT pts FROM updates WHERE user_id = $1 ORDER BY pts", user_id)
        assert list(range(1, len(pts) + 1)) == [int(r["pts"]) for r in pts]
