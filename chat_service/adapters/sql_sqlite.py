"""The write path's statements on SQLite: portable per-row statements (no arrays; the
database is in-process with a single writer, ``write_sql`` says more)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chat_service.adapters.rows import placeholders
from chat_service.adapters.write_sql import (
    MESSAGE_INSERT_COLUMNS,
    OUTBOX_INSERT,
    PTS_UPSERT,
    STORED_COLUMNS,
    ChatLock,
    Prepared,
)
from chat_service.domain.send_plan import SenderRead
from svckit.ports import Executor, Row

_LOCK_ONE = (
    "UPDATE chats SET last_seq = last_seq + $2, last_activity_ms = "
    "CASE WHEN last_activity_ms > $3 THEN last_activity_ms ELSE $3 END "
    "WHERE id = $1 AND EXISTS (SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $4) "
    "RETURNING id, last_seq, last_activity_ms"
)
_GIVE_BACK = "UPDATE chats SET last_seq = last_seq - $2 WHERE id = $1"
_MEMBERS = "SELECT chat_id, user_id, unread_count FROM chat_members WHERE chat_id "
_UNREAD_ADD = "UPDATE chat_members SET unread_count = unread_count + $2 WHERE chat_id = $1"
_UNREAD_SET = (
    "UPDATE chat_members SET unread_count = $3, read_inbox_seq = $4 "
    "WHERE chat_id = $1 AND user_id = $2"
)
_UPDATES_ONE = (
    "INSERT INTO updates (user_id, pts, pts_count, kind, chat_id, payload, date_ms) "
    "VALUES ($1, $2, 1, $3, $4, $5, $6)"
)
_PTS_CHUNK = 500  # users per multi-row upsert


class SqliteWriteSql:
    """``WriteSql`` on SQLite (aiosqlite)."""

    async def stored_messages(self, tx: Executor, pairs: Sequence[tuple[int, str]]) -> list[Row]:
        where = " OR ".join(
            f"(sender_id = ${2 * n + 1} AND client_msg_id = ${2 * n + 2})"
            for n in range(len(pairs))
        )
        return await tx.fetch(
            f"SELECT {STORED_COLUMNS} FROM messages WHERE {where}", *(v for p in pairs for v in p)
        )

    async def lock_chats(
        self, tx: Executor, chats: Sequence[ChatLock], now_ms: int
    ) -> dict[int, Row]:
        locked: dict[int, Row] = {}
        for chat in sorted(chats, key=lambda c: c.chat_id):
            for sender in chat.senders:  # the first sender who is a member decides
                row = await tx.fetchrow(_LOCK_ONE, chat.chat_id, chat.count, now_ms, sender)
                if row is not None:
                    locked[chat.chat_id] = row
                    break
        return locked

    async def give_back_seqs(self, tx: Executor, chat_id: int, count: int) -> None:
        await tx.execute(_GIVE_BACK, chat_id, count)

    async def chat_members(
        self, tx: Executor, chat_ids: Sequence[int]
    ) -> list[tuple[int, int, int]]:
        where = f"IN ({placeholders(len(chat_ids))}) ORDER BY chat_id, user_id"
        rows = await tx.fetch(_MEMBERS + where, *chat_ids)
        return [(int(r["chat_id"]), int(r["user_id"]), int(r["unread_count"])) for r in rows]

    async def prepare_send(
        self,
        tx: Executor,
        counts: Mapping[int, int],
        senders: Sequence[SenderRead],
        pts: Mapping[int, int],
        messages: int,
    ) -> Prepared:
        # Every member + their chat's count, then the senders' own marks.
        await tx.executemany(_UNREAD_ADD, list(counts.items()))
        await tx.executemany(
            _UNREAD_SET, [(s.chat_id, s.user_id, s.unread, s.watermark) for s in senders]
        )
        unread = await self.chat_members(tx, sorted(counts))
        last = await self.bump_pts(tx, pts)
        top = await tx.fetchval("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        start = int(top or 0) + 1  # one writer at a time: the ids above the top are free
        return Prepared(unread, last, list(range(start, start + messages)))

    async def write_send(
        self,
        tx: Executor,
        messages: Sequence[Sequence[object]],
        updates: Sequence[tuple[object, ...]],
        outbox: tuple[bytes, int, bool],
    ) -> int:
        values = ", ".join(f"({placeholders(11, n * 11 + 1)})" for n in range(len(messages)))
        await tx.execute(
            f"INSERT INTO messages ({MESSAGE_INSERT_COLUMNS}) VALUES {values}",
            *(v for row in messages for v in row),
        )
        await self.insert_updates(tx, updates)
        return int(await tx.fetchval(OUTBOX_INSERT, *outbox))

    async def bump_pts(self, tx: Executor, counts: Mapping[int, int]) -> dict[int, int]:
        users, last = sorted(counts), {}
        for start in range(0, len(users), _PTS_CHUNK):
            chunk = users[start : start + _PTS_CHUNK]
            values = ", ".join(f"(${2 * i + 1}, ${2 * i + 2})" for i in range(len(chunk)))
            rows = await tx.fetch(
                f"INSERT INTO user_pts (user_id, pts) VALUES {values} " + PTS_UPSERT,
                *(v for u in chunk for v in (u, counts[u])),
            )
            last.update({int(r["user_id"]): int(r["pts"]) for r in rows})
        return last

    async def insert_updates(self, tx: Executor, rows: Sequence[tuple[object, ...]]) -> None:
        await tx.executemany(_UPDATES_ONE, rows)
