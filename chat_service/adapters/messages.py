"""The send transaction: dedupe, gapless seqs, messages, per-member updates, outbox.

A batch of sends runs in ONE transaction (a single send is a batch of one). The items may
come from several senders: a gateway pod coalesces the sends of all its connections into
one batch (group commit). Each step below is one statement for the whole batch
(``batch_sql``: arrays on PostgreSQL), so the round trips are paid per batch, not per
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

from chat_service.adapters import batch_sql
from chat_service.adapters.batch_sql import ChatLock
from chat_service.adapters.rows import body_columns, body_from_row, in_transaction
from chat_service.adapters.send_plan import ChatBatch, new_message_updates, sender_reads
from chat_service.adapters.updatelog import LogBatch, Outboxed
from chat_service.domain.errors import ChatNotFound, ClientMsgIdReused
from chat_service.domain.model import Message, Outgoing, SendResult, UpdateKind
from svckit.errors import DomainError
from svckit.metrics import MESSAGES_SENT, SEND_COMMIT_SECONDS
from svckit.ports import Database, Executor, Row

Outcome = SendResult | DomainError


class MessageStore:
    """Sends messages (see the module docstring)."""

    def __init__(self, db: Database, hand_over: Callable[[Outboxed], None] | None = None) -> None:
        """``hand_over`` gets each committed batch's outbox row to publish at once (the
        relay's ``hand_over``); without it the relay finds the row by polling."""
        self._db, self._hand_over = db, hand_over

    async def send(self, sends: Sequence[Outgoing], now_ms: int, request_id: str) -> list[Outcome]:
        """One outcome per send, in order; the whole batch commits together."""
        attempts: list[_Send] = []

        async def work(tx: Executor) -> list[Outcome]:
            retry = bool(attempts)  # a retry after a unique violation: look repeats up
            handed = self._hand_over is not None
            attempts.append(_Send(tx, sends, now_ms, request_id, handed, retry))
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
        tx: Executor,
        sends: Sequence[Outgoing],
        now_ms: int,
        request_id: str,
        hand_over: bool,
        look_up: bool,
    ) -> None:
        self.tx, self.sends, self.now_ms = tx, sends, now_ms
        self.hand_over, self.look_up = hand_over, look_up
        self.outboxed: Outboxed | None = None
        self.log = LogBatch(now_ms, request_id)
        self.outcomes: list[Outcome | None] = [None] * len(sends)
        self.twins: dict[int, int] = {}  # item index -> earlier index with the same id
        self.inserted = 0  # fresh messages this attempt wrote (repeats excluded)

    async def run(self) -> list[Outcome]:
        chats = await self._dedupe()
        locked = await self._lock(sorted(chats.values(), key=lambda b: b.chat_id))
        if locked:
            await self._load_members(locked)
        live = [b for b in locked if b.indexes]
        if live:
            await self._write(chats, live)
        for index, first in self.twins.items():
            self.outcomes[index] = self.outcomes[first]
        return [o if o is not None else ChatNotFound() for o in self.outcomes]

    async def _stored(self) -> dict[tuple[int, str], Row]:
        """The already-sent messages among the batch's (sender, client_msg_id) pairs
        (none looked up on a first attempt, see the module docstring)."""
        if not self.look_up:
            return {}
        pairs = list(dict.fromkeys((s.sender_id, s.item.client_msg_id) for s in self.sends))
        rows = await batch_sql.stored_messages(self.tx, pairs)
        return {(int(r["sender_id"]), str(r["client_msg_id"])): r for r in rows}

    async def _dedupe(self) -> dict[int, ChatBatch]:
        """Answer repeats from stored messages; group the fresh items by chat."""
        stored = await self._stored()
        first_of: dict[tuple[int, str], int] = {}
        chats: dict[int, ChatBatch] = {}
        for index, send in enumerate(self.sends):
            item, key = send.item, (send.sender_id, send.item.client_msg_id)
            row = stored.get(key)
            if row is not None:
                # A deleted message's body is erased: its chat is all a retry can match.
                same = int(row["chat_id"]) == item.chat_id and (
                    row["deleted_at_ms"] is not None or body_from_row(row) == item.body
                )
                self.outcomes[index] = (
                    SendResult(int(row["id"]), int(row["seq"]), int(row["date_ms"]),
                               int(row["sender_pts"]))
                    if same else ClientMsgIdReused()
                )  # fmt: skip
            elif key in first_of:
                first = self.sends[first_of[key]].item
                if (first.chat_id, first.body) == (item.chat_id, item.body):
                    self.twins[index] = first_of[key]
                else:
                    self.outcomes[index] = ClientMsgIdReused()
            else:
                first_of[key] = index
                chats.setdefault(item.chat_id, ChatBatch(item.chat_id)).indexes.append(index)
        return chats

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
        rows = await batch_sql.lock_chats(self.tx, wants, self.now_ms)
        locked = [b for b in batches if b.chat_id in rows]
        for batch in locked:
            row = rows[batch.chat_id]
            batch.last_seq, batch.date_ms = int(row["last_seq"]), int(row["last_activity_ms"])
        return locked

    async def _load_members(self, locked: Sequence[ChatBatch]) -> None:
        """Every locked chat's members (read under the lock); drop non-members' items."""
        by_id = {b.chat_id: b for b in locked}
        for chat_id, user_id, unread in await batch_sql.chat_members(self.tx, list(by_id)):
            batch = by_id[chat_id]
            batch.members.append(user_id)
            batch.prior[user_id] = unread
        for batch in locked:
            keep = [i for i in batch.indexes if self.sends[i].sender_id in batch.prior]
            dropped = len(batch.indexes) - len(keep)
            if dropped:  # give the non-members' seqs back: seqs stay gapless
                await self.tx.execute(
                    "UPDATE chats SET last_seq = last_seq - $2 WHERE id = $1",
                    batch.chat_id,
                    dropped,
                )
                batch.last_seq -= dropped
                batch.indexes = keep

    async def _write(self, chats: Mapping[int, ChatBatch], live: Sequence[ChatBatch]) -> None:
        """Unread counts, pts and message ids in one step; then the messages, their
        NewMessage updates and the outbox row in one more."""
        planned = sorted(
            ((b, i, b.first_seq + n) for b in live for n, i in enumerate(b.indexes)),
            key=lambda p: p[1],  # request order: pts and message ids follow it
        )
        pending = [
            self.log.reserve(UpdateKind.NEW_MESSAGE, b.chat_id, b.members, self.sends[i].session_id)
            for b, i, _ in planned
        ]
        counts = {b.chat_id: len(b.indexes) for b in live}
        prepared = await batch_sql.prepare_send(
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
            self.outcomes[index] = SendResult(message_id, seq, batch.date_ms, pts)
        updates, envelope = self.log.rows()
        outbox = (envelope.SerializeToString(), self.now_ms, self.hand_over)
        self.outboxed = Outboxed(
            await batch_sql.write_send(self.tx, rows, updates, outbox), envelope
        )
        self.inserted = len(rows)
