"""The send transaction: dedupe, gapless seqs, messages, per-member updates, outbox.

This module reads and writes; what the rows become (repeats, seqs, unread counts, the
updates) is decided by ``chat_service.domain.send_plan``.

A batch of sends runs in ONE transaction (a single send is a batch of one). The items may
come from several senders: a gateway pod coalesces the sends of all its connections into
one batch (group commit). Each step below is one statement for the whole batch
(``write_sql``: arrays on PostgreSQL), so the round trips are paid per batch, not per
message or per chat:

1. repeats: a repeat of a stored (sender, client_msg_id) with the same chat and body
   answers with the stored result, one with anything else is CLIENT_MSG_ID_REUSED. The
   first attempt does not look them up (repeats are rare, and the lookup was a round
   trip on every batch): a repeat makes its message insert hit the unique
   (sender_id, client_msg_id) index, the transaction rolls back and the retry looks the
   batch's pairs up first;
2. lock the batch's chats in ascending id and allocate each its ``k`` seqs
   (``last_seq + k``), only in chats one of its batch senders is a member of; the row
   lock serialises concurrent senders of one chat, which keeps seqs gapless and date_ms
   non-decreasing in seq order;
3. read every locked chat's members at once; items whose sender is not a member become
   CHAT_NOT_FOUND and hand their seqs back (only when a chat mixes members and
   non-members, which keeps seqs gapless);
4. in one statement: every member's unread change (+unread for the others, each
   sender's read watermark moved to its own last message of the batch), every member's
   pts (one upsert on the counters) and the messages' ids;
5. in one statement: insert the messages, log one NewMessage per message for every
   member (the sender's own devices included), write one outbox row, which the relay
   gets handed after the commit.

Locks are always taken in the order chats -> chat_members -> user_pts, each set in
ascending id, so concurrent batches do not deadlock; a lock conflict or a lost
idempotency race retries the whole transaction (``in_transaction``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from chat_service.adapters.rows import body_columns, body_from_row, in_transaction
from chat_service.adapters.updatelog import LogBatch, Outboxed
from chat_service.adapters.write_sql import ChatLock, WriteSql, write_sql_for
from chat_service.domain.model import Message, Outgoing, SendResult, UpdateKind
from chat_service.domain.send_plan import (
    ChatBatch,
    Outcome,
    SendPlan,
    StoredSend,
    message_order,
    new_message_updates,
    plan_batch,
    sender_reads,
)
from svckit.metrics import MESSAGES_SENT, SEND_COMMIT_SECONDS
from svckit.ports import Database, Executor

__all__ = ["MessageStore", "Outcome"]


class MessageStore:
    """Sends messages (see the module docstring)."""

    def __init__(self, db: Database, hand_over: Callable[[Outboxed], None] | None = None) -> None:
        """``hand_over`` gets each committed batch's outbox row to publish at once (the
        relay's ``hand_over``); without it the relay finds the row by polling."""
        self._db, self._hand_over = db, hand_over
        self._sql = write_sql_for(db.dialect)

    async def send(self, sends: Sequence[Outgoing], now_ms: int, request_id: str) -> list[Outcome]:
        """One outcome per send, in order; the whole batch commits together."""
        attempts: list[_Send] = []

        async def work(tx: Executor) -> list[Outcome]:
            retry = bool(attempts)  # a retry after a unique violation: look repeats up
            handed = self._hand_over is not None
            attempts.append(_Send(self._sql, tx, sends, now_ms, request_id, handed, retry))
            return await attempts[-1].run()

        started = time.perf_counter()
        outcomes = await in_transaction(self._db, work)
        SEND_COMMIT_SECONDS.observe(time.perf_counter() - started)
        MESSAGES_SENT.inc(attempts[-1].inserted)
        if self._hand_over is not None and attempts[-1].outboxed is not None:
            self._hand_over(attempts[-1].outboxed)
        return outcomes


class _Send:
    """One attempt of the send transaction."""

    def __init__(
        self,
        sql: WriteSql,
        tx: Executor,
        sends: Sequence[Outgoing],
        now_ms: int,
        request_id: str,
        hand_over: bool,
        look_up: bool,
    ) -> None:
        self.sql, self.tx, self.sends, self.now_ms = sql, tx, sends, now_ms
        self.hand_over, self.look_up = hand_over, look_up
        self.outboxed: Outboxed | None = None
        self.log = LogBatch(sql, now_ms, request_id)
        self.plan = SendPlan([], {}, {})  # run() plans the batch
        self.inserted = 0  # fresh messages this attempt wrote (repeats excluded)

    async def run(self) -> list[Outcome]:
        self.plan = plan_batch(self.sends, await self._stored())
        chats = self.plan.chats
        locked = await self._lock(sorted(chats.values(), key=lambda b: b.chat_id))
        if locked:
            await self._load_members(locked)
        live = [b for b in locked if b.indexes]
        if live:
            await self._write(chats, live)
        return self.plan.results()

    async def _stored(self) -> dict[tuple[int, str], StoredSend]:
        """The already-sent messages among the batch's (sender, client_msg_id) pairs
        (none looked up on a first attempt, see the module docstring)."""
        if not self.look_up:
            return {}
        pairs = list(dict.fromkeys((s.sender_id, s.item.client_msg_id) for s in self.sends))
        return {
            (int(r["sender_id"]), str(r["client_msg_id"])): StoredSend(
                int(r["chat_id"]),
                None if r["deleted_at_ms"] is not None else body_from_row(r),
                SendResult(int(r["id"]), int(r["seq"]), int(r["date_ms"]), int(r["sender_pts"])),
            )
            for r in await self.sql.stored_messages(self.tx, pairs)
        }

    async def _lock(self, batches: Sequence[ChatBatch]) -> list[ChatBatch]:
        """Allocate seqs in every chat one of whose senders is a member; the others' items
        stay None (CHAT_NOT_FOUND). Returns the locked chats, ascending."""
        wants = [
            ChatLock(
                b.chat_id,
                len(b.indexes),
                tuple(sorted({self.sends[i].sender_id for i in b.indexes})),
            )
            for b in batches
        ]
        rows = await self.sql.lock_chats(self.tx, wants, self.now_ms)
        locked = [b for b in batches if b.chat_id in rows]
        for batch in locked:
            row = rows[batch.chat_id]
            batch.last_seq, batch.date_ms = int(row["last_seq"]), int(row["last_activity_ms"])
        return locked

    async def _load_members(self, locked: Sequence[ChatBatch]) -> None:
        """Every locked chat's members (read under the lock); drop non-members' items."""
        by_id = {b.chat_id: b for b in locked}
        for chat_id, user_id, unread in await self.sql.chat_members(self.tx, list(by_id)):
            batch = by_id[chat_id]
            batch.members.append(user_id)
            batch.prior[user_id] = unread
        for batch in locked:
            dropped = batch.drop_non_members(self.sends)
            if dropped:  # their seqs go back: seqs stay gapless
                await self.sql.give_back_seqs(self.tx, batch.chat_id, dropped)

    async def _write(self, chats: Mapping[int, ChatBatch], live: Sequence[ChatBatch]) -> None:
        """Unread counts, pts and message ids in one step; then the messages, their
        NewMessage updates and the outbox row in one more."""
        planned = message_order(live)
        pending = [
            self.log.reserve(UpdateKind.NEW_MESSAGE, b.chat_id, b.members, self.sends[i].session_id)
            for b, i, _ in planned
        ]
        counts = {b.chat_id: len(b.indexes) for b in live}
        prepared = await self.sql.prepare_send(
            self.tx, counts, sender_reads(live, self.sends), self.log.pts_counts(), len(planned)
        )
        for chat_id, user_id, unread in prepared.unread:
            chats[chat_id].unread[user_id] = unread
        self.log.assign(prepared.last_pts)
        rows: list[tuple[object, ...]] = []
        for (batch, index, seq), update, message_id in zip(
            planned, pending, prepared.message_ids, strict=True
        ):
            send = self.sends[index]
            pts = update.pts_of(send.sender_id)
            message = Message(
                message_id, batch.chat_id, seq, send.sender_id, batch.date_ms,
                send.item.body, client_msg_id=send.item.client_msg_id,
            )  # fmt: skip
            rows.append((message_id, batch.chat_id, seq, send.sender_id, send.item.client_msg_id,
                         *body_columns(send.item.body), batch.date_ms, pts))  # fmt: skip
            update.fill(*new_message_updates(batch, self.sends, message))
            self.plan.outcomes[index] = SendResult(message_id, seq, batch.date_ms, pts)
        updates, envelope = self.log.rows()
        outbox = (envelope.SerializeToString(), self.now_ms, self.hand_over)
        self.outboxed = Outboxed(
            await self.sql.write_send(self.tx, rows, updates, outbox), envelope
        )
        self.inserted = len(rows)
