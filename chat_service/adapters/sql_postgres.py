"""The write path's statements on PostgreSQL: one fixed-text statement per step, the
batch as arrays (``write_sql`` says why)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chat_service.adapters.write_sql import (
    MESSAGE_INSERT_COLUMNS,
    PTS_UPSERT,
    STORED_COLUMNS,
    ChatLock,
    Prepared,
)
from chat_service.domain.send_plan import SenderRead
from svckit.ports import Executor, Row

_STORED = (
    f"SELECT {STORED_COLUMNS} FROM messages JOIN unnest($1::bigint[], $2::text[]) "
    "AS k(sender_id, client_msg_id) USING (sender_id, client_msg_id)"
)
# Rows are locked in ascending chat id (a locking clause is applied after ORDER BY), the
# order every writer of chats follows; a chat none of its batch senders belongs to is
# neither locked nor returned.
_LOCK = (
    "WITH want AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS w(chat_id, k)), "
    "allowed AS (SELECT c.id, want.k FROM chats c JOIN want ON want.chat_id = c.id "
    "WHERE EXISTS (SELECT 1 FROM chat_members m JOIN unnest($3::bigint[], $4::bigint[]) "
    "AS s(chat_id, user_id) ON m.chat_id = s.chat_id AND m.user_id = s.user_id "
    "WHERE s.chat_id = c.id) ORDER BY c.id FOR UPDATE OF c) "
    "UPDATE chats SET last_seq = chats.last_seq + allowed.k, "
    "last_activity_ms = GREATEST(chats.last_activity_ms, $5) FROM allowed "
    "WHERE chats.id = allowed.id RETURNING chats.id, chats.last_seq, chats.last_activity_ms"
)
_GIVE_BACK = "UPDATE chats SET last_seq = last_seq - $2 WHERE id = $1"
_MEMBERS = (
    "SELECT array_agg(chat_id ORDER BY chat_id, user_id) AS chats, "
    "array_agg(user_id ORDER BY chat_id, user_id) AS users, "
    "array_agg(unread_count ORDER BY chat_id, user_id) AS unread "
    "FROM chat_members WHERE chat_id = ANY($1::bigint[])"
)
_PTS = (
    "INSERT INTO user_pts (user_id, pts) SELECT * FROM unnest($1::bigint[], $2::bigint[]) "
    "AS t(user_id, pts) ORDER BY user_id " + PTS_UPSERT
)
# The send's middle step. ``u``: every member of the batch's chats (``c``: chat id -> its
# message count k) gets unread + k, except the senders (``s``), whose unread and watermark
# are set; the chats are locked, so their membership cannot change under it. Then (the
# InitPlan over ``u`` runs the UPDATE to completion first: the lock order chat_members ->
# user_pts) the pts counters, and ids for the messages.
_PREPARE = (
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
    "WHERE (SELECT count(*) FROM u) >= 0 ORDER BY t.user_id " + PTS_UPSERT + ") "
    # One row of arrays: asyncpg decodes an array in C, a row at a time costs Python work.
    "SELECT (SELECT array_agg(chat_id ORDER BY chat_id, user_id) FROM u) AS chats, "
    "(SELECT array_agg(user_id ORDER BY chat_id, user_id) FROM u) AS members, "
    "(SELECT array_agg(unread_count ORDER BY chat_id, user_id) FROM u) AS unread, "
    "(SELECT array_agg(user_id ORDER BY user_id) FROM p) AS users, "
    "(SELECT array_agg(pts ORDER BY user_id) FROM p) AS pts, "
    "(SELECT array_agg(nextval(pg_get_serial_sequence('messages', 'id'))) "
    "FROM generate_series(1, $9)) AS ids"
)
# The send's last step: messages, update-log rows and the outbox row.
_WRITE = (
    f"WITH m AS (INSERT INTO messages ({MESSAGE_INSERT_COLUMNS}) SELECT * FROM unnest("
    "$1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::int[], "
    "$7::text[], $8::bytea[], $9::bytea[], $10::bigint[], $11::bigint[])), "
    "u AS (INSERT INTO updates (user_id, pts, pts_count, kind, chat_id, payload, date_ms) "
    "SELECT user_id, pts, 1, $16, chat_id, payload, $17 FROM unnest($12::bigint[], "
    "$13::bigint[], $14::bigint[], $15::bytea[]) AS u(user_id, pts, chat_id, payload)) "
    "INSERT INTO outbox (payload, created_at_ms, handed_over) VALUES ($18, $19, $20) RETURNING id"
)
_UPDATES = (
    "INSERT INTO updates (user_id, pts, pts_count, kind, chat_id, payload, date_ms) "
    "SELECT user_id, pts, 1, kind, chat_id, payload, date_ms FROM unnest($1::bigint[], "
    "$2::bigint[], $3::int[], $4::bigint[], $5::bytea[], $6::bigint[]) "
    "AS u(user_id, pts, kind, chat_id, payload, date_ms)"
)


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """Rows -> one list per column (the arrays an ``unnest`` takes)."""
    return [[row[n] for row in rows] for n in range(width)] if rows else [[]] * width


class PostgresWriteSql:
    """``WriteSql`` on PostgreSQL (asyncpg)."""

    async def stored_messages(self, tx: Executor, pairs: Sequence[tuple[int, str]]) -> list[Row]:
        senders, ids = _columns(pairs, 2)
        return await tx.fetch(_STORED, senders, ids)

    async def lock_chats(
        self, tx: Executor, chats: Sequence[ChatLock], now_ms: int
    ) -> dict[int, Row]:
        chats = sorted(chats, key=lambda c: c.chat_id)
        pairs = [(c.chat_id, s) for c in chats for s in c.senders]
        rows = await tx.fetch(
            _LOCK, [c.chat_id for c in chats], [c.count for c in chats],
            [p[0] for p in pairs], [p[1] for p in pairs], now_ms,
        )  # fmt: skip
        return {int(r["id"]): r for r in rows}

    async def give_back_seqs(self, tx: Executor, chat_id: int, count: int) -> None:
        await tx.execute(_GIVE_BACK, chat_id, count)

    async def chat_members(
        self, tx: Executor, chat_ids: Sequence[int]
    ) -> list[tuple[int, int, int]]:
        # One row of arrays, which asyncpg decodes in C.
        row = await tx.fetchrow(_MEMBERS, chat_ids)
        if row is None or row["chats"] is None:
            return []
        return list(zip(row["chats"], row["users"], row["unread"], strict=True))

    async def prepare_send(
        self,
        tx: Executor,
        counts: Mapping[int, int],
        senders: Sequence[SenderRead],
        pts: Mapping[int, int],
        messages: int,
    ) -> Prepared:
        chats, users = sorted(counts), sorted(pts)
        own = [(r.chat_id, r.user_id, r.unread, r.watermark) for r in senders]
        row = await tx.fetchrow(
            _PREPARE, chats, [counts[c] for c in chats], *_columns(own, 4),
            users, [pts[u] for u in users], messages,
        )  # fmt: skip
        assert row is not None  # an aggregate over no rows is still one row
        unread = list(
            zip(row["chats"] or [], row["members"] or [], row["unread"] or [], strict=True)
        )
        last = dict(zip(row["users"] or [], row["pts"] or [], strict=True))
        return Prepared(unread, last, sorted(row["ids"] or []))

    async def write_send(
        self,
        tx: Executor,
        messages: Sequence[Sequence[object]],
        updates: Sequence[tuple[object, ...]],
        outbox: tuple[bytes, int, bool],
    ) -> int:
        kind, date_ms = updates[0][2], updates[0][5]
        if any(row[2] != kind or row[5] != date_ms for row in updates):
            raise ValueError("a send's update rows share one kind and one date")
        users, pts, _, chats, payloads, _ = _columns(updates, 6)
        args = [*_columns(messages, 11), users, pts, chats, payloads, kind, date_ms, *outbox]
        return int(await tx.fetchval(_WRITE, *args))

    async def bump_pts(self, tx: Executor, counts: Mapping[int, int]) -> dict[int, int]:
        users = sorted(counts)
        rows = await tx.fetch(_PTS, users, [counts[u] for u in users])
        return {int(r["user_id"]): int(r["pts"]) for r in rows}

    async def insert_updates(self, tx: Executor, rows: Sequence[tuple[object, ...]]) -> None:
        await tx.execute(_UPDATES, *_columns(rows, 6))
