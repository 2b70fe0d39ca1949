"""Read watermarks: ReadHistory's transaction and the batcher that coalesces calls.

Every ReadHistory call waits in a ``ReadBatcher`` for up to one flush window (about
50 ms); the batcher then coalesces the calls (the highest max_seq per user and chat) and
writes them all in ONE transaction, and each call returns after that commit with its
result. Under load this turns hundreds of tiny write transactions a second into a few.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from chat_service.adapters.rows import in_transaction
from chat_service.adapters.updatelog import LogBatch
from chat_service.adapters.write_sql import write_sql_for
from chat_service.domain import rules, updates
from chat_service.domain.errors import ChatNotFound
from chat_service.domain.model import ReadRequest, ReadResult, UpdateKind
from svckit.errors import DomainError
from svckit.ports import Database, Executor

log = logging.getLogger("minitg.chat.reads")
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


class ReadBatcher:
    """Coalesces ReadHistory calls for one flush window and writes them together."""

    def __init__(
        self,
        store: ReadStore,
        *,
        window: float,
        clock_ms: Callable[[], int],
        on_commit: Callable[[], None],
        max_batch: int = 500,
    ) -> None:
        self._store, self._window, self._clock_ms = store, window, clock_ms
        self._on_commit, self._max_batch = on_commit, max_batch
        self._waiting: dict[
            tuple[int, int], tuple[ReadRequest, list[asyncio.Future[ReadOutcome]]]
        ] = {}
        self._request_id = ""
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, req: ReadRequest, request_id: str) -> ReadResult:
        """Queue the read, wait for the batched commit, return this call's result."""
        rules.read_target(req.max_seq, 0, req.max_seq)  # validates max_seq before queueing
        future: asyncio.Future[ReadOutcome] = asyncio.get_running_loop().create_future()
        key = (req.user_id, req.chat_id)
        held = self._waiting.get(key)
        if held is None or req.max_seq > held[0].max_seq:
            self._waiting[key] = (req, [*(held[1] if held else []), future])
        else:
            held[1].append(future)
        self._request_id = self._request_id or request_id
        if len(self._waiting) >= self._max_batch:
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        outcome = await future
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._window)
        self._flusher = None
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            taken, self._waiting = self._waiting, {}
            request_id, self._request_id = self._request_id, ""
            if not taken:
                return
            held = list(taken.values())
            try:
                outcomes = await self._store.read(
                    [req for req, _ in held], self._clock_ms(), request_id
                )
            except Exception as exc:
                for _, futures in held:
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                return
            self._on_commit()
            for (_, futures), outcome in zip(held, outcomes, strict=True):
                for future in futures:
                    if not future.done():
                        future.set_result(outcome)

    async def close(self) -> None:
        """Write whatever is waiting (shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self._flush()
