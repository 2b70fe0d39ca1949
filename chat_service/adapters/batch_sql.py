"""The set-at-a-time statements of the write path, one per step whatever the batch size.

On PostgreSQL every step is ONE statement whose text never changes: the batch travels as
arrays (``unnest``/``ANY``), so asyncpg's per-connection statement cache always hits
(statements built with one placeholder per value have a different text for every batch
size and missed the 100-entry cache nearly every time: a Parse round trip and a fresh
plan per statement) and a batch of 100 costs the same round trips as a batch of one.

SQLite has no arrays; there the same steps run as the portable per-row statements (the
database is in-process and has a single writer, so round trips and lock order matter
little). Both are checked by the same contract tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chat_service.adapters.rows import placeholders
from chat_service.domain.send_plan import SenderRead
from svckit.ports import Executor, Row

STORED_COLUMNS = (
    "id, sender_id, chat_id, seq, date_ms, sender_pts, client_msg_id, body_kind, "
    "body_text, body_header, body_ciphertext, deleted_at_ms"
)
_STORED_PG = (
    f"SELECT {STORED_COLUMNS} FROM messages JOIN unnest($1::bigint[], $2::text[]) "
    "AS k(sender_id, client_msg_id) USING (sender_id, client_msg_id)"
)
# Rows are locked in ascending chat id (a locking clause is applied after ORDER BY), the
# order every writer of chats follows; a chat none of its batch senders belongs to is
# neither locked nor returned.
_LOCK_PG = (
    "WITH want AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS w(chat_id, k)), "
    "allowed AS (SELECT c.id, want.k FROM chats c JOIN want ON want.chat_id = c.id "
    "WHERE EXISTS (SELECT 1 FROM chat_members m JOIN unnest($3::bigint[], $4::bigint[]) "
    "AS s(chat_id, user_id) ON m.chat_id = s.chat_id AND m.user_id = s.user_id "
    "WHERE s.chat_id = c.id) ORDER BY c.id FOR UPDATE OF c) "
    "UPDATE chats SET last_seq = chats.last_seq + allowed.k, "
    "last_activity_ms = GREATEST(chats.last_activity_ms, $5) FROM allowed "
    "WHERE chats.id = allowed.id RETURNING chats.id, chats.last_seq, chats.last_activity_ms"
)
_LOCK_ONE = (
    "UPDATE chats SET last_seq = last_seq + $2, last_activity_ms = "
    "CASE WHEN last_activity_ms > $3 THEN last_activity_ms ELSE $3 END "
    "WHERE id = $1 AND EXISTS (SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $4) "
    "RETURNING id, last_seq, last_activity_ms"
)
_MEMBERS = "SELECT chat_id, user_id, unread_count FROM chat_members WHERE chat_id "
_MEMBERS_PG = (
    "SELECT array_agg(chat_id ORDER BY chat_id, user_id) AS chats, "
    "array_agg(user_id ORDER BY chat_id, user_id) AS users, "
    "array_agg(unread_count ORDER BY chat_id, user_id) AS unread "
    "FROM chat_members WHERE chat_id = ANY($1::bigint[])"
)
_UNREAD_ADD = "UPDATE chat_members SET unread_count = unread_count + $2 WHERE chat_id = $1"
_UNREAD_SET = (
    "UPDATE chat_members SET unread_count = $3, read_inbox_seq = $4 "
    "WHERE chat_id = $1 AND user_id = $2"
)
_PTS_UPSERT = (
    "ON CONFLICT (user_id) DO UPDATE SET pts = user_pts.pts + excluded.pts RETURNING user_id, pts"
)
_PTS_PG = (
    "INSERT INTO user_pts (user_id, pts) SELECT * FROM unnest($1::bigint[], $2::bigint[]) "
    "AS t(user_id, pts) ORDER BY user_id " + _PTS_UPSERT
)
MESSAGE_INSERT_COLUMNS = (
    "id, chat_id, seq, sender_id, client_msg_id, body_kind, body_text, body_header, "
    "body_ciphertext, date_ms, sender_pts"
)
OUTBOX_INSERT = (
    "INSERT INTO outbox (payload, created_at_ms, handed_over) VALUES ($1, $2, $3) RETURNING id"
)
# The send's middle step on PostgreSQL. ``u``: every member of the batch's chats (``c``:
# chat id -> its message count k) gets unread + k, except the senders (``s``), whose unread
# and watermark are set; the chats are locked, so their membership cannot change under
# it. Then (the InitPlan over ``u`` runs the UPDATE to completion first: the lock order
# chat_members -> user_pts) the pts counters, and ids for the messages.
_PREPARE_PG = (
    "WITH c AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS c(chat_id, k)), "
    "s AS (SELECT * FROM unnest($3::bigint[], $4::bigint[], $5::int[], $6::bigint[]) "
    "AS s(chat_id, user_id, unread, watermark)), "
    "u AS (UPDATE chat_members cm SET unread_count = COALESCE((SELECT s.unread FROM s "
    "WHERE s.chat_id = cm.chat_id AND s.user_id = cm.user_id), cm.unread_count + c.k), "
    "read_inbox_seq = COALESCE((SELECT s.watermark FROM s "
    "WHERE s.chat_id = cm.chat_id AND s.user_id = cm.user_id), cm.read_inbox_seq) "
    "FROM c WHERE cm.chat_id = c.chat_id RETURNING cm.chat_id, cm.user_id, cm.unread_count), "
    "p AS (INSERT INTO user_pts (user_id, pts) SELECT t.user_id, t.pts "
    "FROM unnest($7::bigint[], $8::bigint[]) AS t(user_id, pts) "
    "WHERE (SELECT count(*) FROM u) >= 0 ORDER BY t.user_id " + _PTS_UPSERT + ") "
    # One row of arrays: asyncpg decodes an array in C, a row at a time costs Python work.
    "SELECT (SELECT array_agg(chat_id ORDER BY chat_id, user_id) FROM u) AS chats, "
    "(SELECT array_agg(user_id ORDER BY chat_id, user_id) FROM u) AS members, "
    "(SELECT array_agg(unread_count ORDER BY chat_id, user_id) FROM u) AS unread, "
    "(SELECT array_agg(user_id ORDER BY user_id) FROM p) AS users, "
    "(SELECT array_agg(pts ORDER BY user_id) FROM p) AS pts, "
    "(SELECT array_agg(nextval(pg_get_serial_sequence('messages', 'id'))) "
    "FROM generate_series(1, $9)) AS ids"
)
# The send's last step on PostgreSQL: messages, update-log rows and the outbox row.
_WRITE_PG = (
    f"WITH m AS (INSERT INTO messages ({MESSAGE_INSERT_COLUMNS}) SELECT * FROM unnest("
    "$1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::int[], "
    "$7::text[], $8::bytea[], $9::bytea[], $10::bigint[], $11::bigint[])), "
    "u AS (INSERT INTO updates (user_id, pts, pts_count, kind, chat_id, payload, date_ms) "
    "SELECT user_id, pts, 1, $16, chat_id, payload, $17 FROM unnest($12::bigint[], "
    "$13::bigint[], $14::bigint[], $15::bytea[]) AS u(user_id, pts, chat_id, payload)) "
    "INSERT INTO outbox (payload, created_at_ms, handed_over) VALUES ($18, $19, $20) RETURNING id"
)
_PTS_CHUNK = 500  # SQLite: users per multi-row upsert
_UPDATES_PG = (
    "INSERT INTO updates (user_id, pts, pts_count, kind, chat_id, payload, date_ms) "
    "SELECT user_id, pts, 1, kind, chat_id, payload, date_ms FROM unnest($1::bigint[], "
    "$2::bigint[], $3::int[], $4::bigint[], $5::bytea[], $6::bigint[]) "
    "AS u(user_id, pts, kind, chat_id, payload, date_ms)"
)
_UPDATES_ONE = (
    "INSERT INTO updates (user_id, pts, pts_count, kind, chat_id, payload, date_ms) "
    "VALUES ($1, $2, 1, $3, $4, $5, $6)"
)


@dataclass(frozen=True, slots=True)
class ChatLock:
    """One chat a batch writes to: how many seqs it takes and who sends in it."""

    chat_id: int
    count: int
    senders: tuple[int, ...]


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """Rows -> one list per column (the arrays a PostgreSQL ``unnest`` takes)."""
    return [[row[n] for row in rows] for n in range(width)] if rows else [[]] * width


async def stored_messages(tx: Executor, pairs: Sequence[tuple[int, str]]) -> list[Row]:
    """The messages already sent under any of the (sender, client_msg_id) pairs."""
    if tx.dialect == "postgres":
        senders, ids = _columns(pairs, 2)
        return await tx.fetch(_STORED_PG, senders, ids)
    where = " OR ".join(
        f"(sender_id = ${2 * n + 1} AND client_msg_id = ${2 * n + 2})" for n in range(len(pairs))
    )
    return await tx.fetch(
        f"SELECT {STORED_COLUMNS} FROM messages WHERE {where}", *(v for p in pairs for v in p)
    )


async def lock_chats(tx: Executor, chats: Sequence[ChatLock], now_ms: int) -> dict[int, Row]:
    """Take ``count`` seqs in each chat one of whose senders is a member, locking those
    chats in ascending id; chat id -> its ``last_seq`` and ``last_activity_ms`` after."""
    chats = sorted(chats, key=lambda c: c.chat_id)
    if tx.dialect == "postgres":
        pairs = [(c.chat_id, s) for c in chats for s in c.senders]
        rows = await tx.fetch(
            _LOCK_PG, [c.chat_id for c in chats], [c.count for c in chats],
            [p[0] for p in pairs], [p[1] for p in pairs], now_ms,
        )  # fmt: skip
        return {int(r["id"]): r for r in rows}
    locked: dict[int, Row] = {}
    for chat in chats:
        for sender in chat.senders:  # the first sender who is a member decides
            row = await tx.fetchrow(_LOCK_ONE, chat.chat_id, chat.count, now_ms, sender)
            if row is not None:
                locked[chat.chat_id] = row
                break
    return locked


async def chat_members(tx: Executor, chat_ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(chat_id, user_id, unread_count) of every member of the chats, by chat then user
    (PostgreSQL: one row of arrays, which asyncpg decodes in C)."""
    if tx.dialect == "postgres":
        row = await tx.fetchrow(_MEMBERS_PG, chat_ids)
        if row is None or row["chats"] is None:
            return []
        return list(zip(row["chats"], row["users"], row["unread"], strict=True))
    where = f"IN ({placeholders(len(chat_ids))}) ORDER BY chat_id, user_id"
    rows = await tx.fetch(_MEMBERS + where, *chat_ids)
    return [(int(r["chat_id"]), int(r["user_id"]), int(r["unread_count"])) for r in rows]


async def _change_unread(
    tx: Executor, counts: Mapping[int, int], senders: Sequence[SenderRead]
) -> list[tuple[int, int, int]]:
    """SQLite: every member + their chat's count, then the senders' own marks; return
    (chat_id, user_id, unread_count) of every member of the chats."""
    await tx.executemany(_UNREAD_ADD, list(counts.items()))
    await tx.executemany(
        _UNREAD_SET, [(s.chat_id, s.user_id, s.unread, s.watermark) for s in senders]
    )
    return await chat_members(tx, sorted(counts))


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the send's middle step returns."""

    unread: list[tuple[int, int, int]]  # (chat_id, user_id, unread_count) of the members
    last_pts: dict[int, int]  # user -> their pts counter after the bump
    message_ids: list[int]  # fresh ids for the batch's messages, ascending


async def prepare_send(
    tx: Executor,
    counts: Mapping[int, int],
    senders: Sequence[SenderRead],
    pts: Mapping[int, int],
    messages: int,
) -> Prepared:
    """Apply the batch's unread changes (``counts``: chat id -> its messages in the batch,
    added to every member's unread but the senders', whose marks are ``senders``), bump
    the pts counters by ``pts``, take ``messages`` ids."""
    if tx.dialect != "postgres":
        unread = await _change_unread(tx, counts, senders)
        last = await bump_pts(tx, pts)
        top = await tx.fetchval("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        start = int(top or 0) + 1  # one writer at a time: the ids above the top are free
        return Prepared(unread, last, list(range(start, start + messages)))
    chats, users = sorted(counts), sorted(pts)
    own = [(r.chat_id, r.user_id, r.unread, r.watermark) for r in senders]
    row = await tx.fetchrow(
        _PREPARE_PG, chats, [counts[c] for c in chats], *_columns(own, 4),
        users, [pts[u] for u in users], messages,
    )  # fmt: skip
    assert row is not None  # an aggregate over no rows is still one row
    unread = list(zip(row["chats"] or [], row["members"] or [], row["unread"] or [], strict=True))
    last = dict(zip(row["users"] or [], row["pts"] or [], strict=True))
    return Prepared(unread, last, sorted(row["ids"] or []))


async def write_send(
    tx: Executor,
    messages: Sequence[Sequence[object]],
    updates: Sequence[tuple[object, ...]],
    outbox: tuple[bytes, int, bool],
) -> int:
    """Insert the messages (rows of ``MESSAGE_INSERT_COLUMNS``), the update-log rows
    (user_id, pts, kind, chat_id, payload, date_ms; one kind and one date for the whole
    send) and the outbox row (payload, created_at_ms, handed_over); return its id."""
    if tx.dialect == "postgres":
        kind, date_ms = updates[0][2], updates[0][5]
        if any(row[2] != kind or row[5] != date_ms for row in updates):
            raise ValueError("a send's update rows share one kind and one date")
        users, pts, _, chats, payloads, _ = _columns(updates, 6)
        args = [*_columns(messages, 11), users, pts, chats, payloads, kind, date_ms, *outbox]
        return int(await tx.fetchval(_WRITE_PG, *args))
    values = ", ".join(f"({placeholders(11, n * 11 + 1)})" for n in range(len(messages)))
    await tx.execute(
        f"INSERT INTO messages ({MESSAGE_INSERT_COLUMNS}) VALUES {values}",
        *(v for row in messages for v in row),
    )
    await insert_updates(tx, updates)
    return int(await tx.fetchval(OUTBOX_INSERT, *outbox))


async def bump_pts(tx: Executor, counts: Mapping[int, int]) -> dict[int, int]:
    """Add ``counts[user]`` to each user's pts counter (creating it at 0), in ascending
    user id (the lock order); return the new values."""
    users = sorted(counts)
    if tx.dialect == "postgres":
        rows = await tx.fetch(_PTS_PG, users, [counts[u] for u in users])
        return {int(r["user_id"]): int(r["pts"]) for r in rows}
    last: dict[int, int] = {}
    for start in range(0, len(users), _PTS_CHUNK):
        chunk = users[start : start + _PTS_CHUNK]
        values = ", ".join(f"(${2 * i + 1}, ${2 * i + 2})" for i in range(len(chunk)))
        rows = await tx.fetch(
            f"INSERT INTO user_pts (user_id, pts) VALUES {values} " + _PTS_UPSERT,
            *(v for u in chunk for v in (u, counts[u])),
        )
        last.update({int(r["user_id"]): int(r["pts"]) for r in rows})
    return last


async def insert_updates(tx: Executor, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert update-log rows of (user_id, pts, kind, chat_id, payload, date_ms)."""
    if tx.dialect == "postgres":
        await tx.execute(_UPDATES_PG, *_columns(rows, 6))
    else:
        await tx.executemany(_UPDATES_ONE, rows)
