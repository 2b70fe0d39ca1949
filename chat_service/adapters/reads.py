"""ReadHistory's transaction: move read watermarks forward and log ReadInbox / ReadOutbox.

The calls arrive coalesced (``chat_service.usecases.read_batcher``): one transaction
writes every read of a flush window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chat_service.adapters.rows import in_transaction
from chat_service.adapters.updatelog import LogBatch
from chat_service.adapters.write_sql import write_sql_for
from chat_service.domain import rules, updates
from chat_service.domain.errors import ChatNotFound
from chat_service.domain.model import ReadRequest, ReadResult, UpdateKind
from svckit.errors import DomainError
from svckit.ports import Database, Executor

ReadOutcome = ReadResult | DomainError


class ReadStore:
    """Moves read watermarks forward and logs ReadInbox / ReadOutbox."""

    def __init__(self, db: Database) -> None:
        self._db, self._sql = db, write_sql_for(db.dialect)

    async def read(
        self, requests: Sequence[ReadRequest], now_ms: int, request_id: str
    ) -> list[ReadOutcome]:
        """One outcome per request; requests for the same (user, chat) must be coalesced
        by the caller. Everything commits in one transaction."""
        ordered = sorted(
            range(len(requests)), key=lambda i: (requests[i].chat_id, requests[i].user_id)
        )

        async def work(tx: Executor) -> list[ReadOutcome]:
            batch = LogBatch(self._sql, now_ms, request_id)
            outcomes: list[ReadOutcome] = [ChatNotFound()] * len(requests)
            fills = []
            for i in ordered:
                outcome, fill = await self._read_one(tx, batch, requests[i])
                outcomes[i] = outcome
                if fill is not None:
                    fills.append((i, fill))
            await batch.allocate(tx)
            for i, fill in fills:
                outcomes[i] = fill()
            await batch.write(tx)
            return outcomes

        return await in_transaction(self._db, work)

    async def _read_one(
        self, tx: Executor, batch: LogBatch, req: ReadRequest
    ) -> tuple[ReadOutcome, Callable[[], ReadResult] | None]:
        """Move one watermark; return the outcome, or a filler to run after allocation."""
        # Lock the reader's member row first: a concurrent send then waits for us and
        # adds its +1 on top of the count computed here.
        row = await tx.fetchrow(
            "UPDATE chat_members SET read_inbox_seq = read_inbox_seq "
            "WHERE chat_id = $1 AND user_id = $2 RETURNING read_inbox_seq, unread_count",
            req.chat_id,
            req.user_id,
        )
        if row is None:
            return ChatNotFound(), None
        current, unread = int(row["read_inbox_seq"]), int(row["unread_count"])
        last_seq = int(
            await tx.fetchval("SELECT last_seq FROM chats WHERE id = $1", req.chat_id) or 0
        )
        target = rules.read_target(req.max_seq, current, last_seq)
        if not target:
            return ReadResult(0, 0, unread), None
        unread = await _unread_after(tx, req.chat_id, req.user_id, target)
        members = await tx.fetch(
            "SELECT user_id, read_inbox_seq FROM chat_members WHERE chat_id = $1", req.chat_id
        )
        watermarks = {int(r["user_id"]): int(r["read_inbox_seq"]) for r in members}
        await tx.execute(
            "UPDATE chat_members SET read_inbox_seq = $3, unread_count = $4 "
            "WHERE chat_id = $1 AND user_id = $2",
            req.chat_id,
            req.user_id,
            target,
            unread,
        )
        inbox = batch.reserve(UpdateKind.READ_INBOX, req.chat_id, [req.user_id], req.session_id)
        outbox_to = rules.read_outbox_recipients(watermarks, req.user_id, target)
        outbox = batch.reserve(UpdateKind.READ_OUTBOX, req.chat_id, outbox_to)

        def fill() -> ReadResult:
            inbox.fill(*updates.read_inbox(req.chat_id, target, req.user_id, unread))
            outbox.fill(updates.read_outbox(req.chat_id, target, req.user_id))
            return ReadResult(inbox.pts_of(req.user_id), 1, unread)

        return ReadResult(0, 0, unread), fill


async def _unread_after(tx: Executor, chat_id: int, user_id: int, seq: int) -> int:
    """Others' messages above ``seq`` that the user can see (not deleted, not hidden)."""
    return int(
        await tx.fetchval(
            "SELECT COUNT(*) FROM messages m WHERE m.chat_id = $1 AND m.seq > $3 "
            "AND m.sender_id <> $2 AND m.deleted_at_ms IS NULL AND NOT EXISTS ("
            " SELECT 1 FROM message_hidden h WHERE h.user_id = $2 AND h.message_id = m.id)",
            chat_id,
            user_id,
            seq,
        )
        or 0
    )
