"""The send transaction: dedupe, gapless seqs, messages, per-member updates, outbox.

A batch of sends by one sender runs in ONE transaction (a single send is a batch of one):

1. look up the batch's client_msg_ids: a repeat with the same chat and body answers with
   the stored result, a repeat with anything else is CLIENT_MSG_ID_REUSED;
2. per chat, in ascending chat id, allocate ``k`` seqs with one
   ``UPDATE chats SET last_seq = last_seq + k ... RETURNING`` guarded by the sender's
   membership; the row lock serialises concurrent senders of one chat, which keeps seqs
   gapless and date_ms non-decreasing in seq order;
3. bump the other members' unread counters and move the sender's read watermark;
4. allocate every member's pts (one upsert), insert the messages, log one NewMessage per
   message for every member (the sender's own devices included), write one outbox row.

Locks are always taken in the order chats -> chat_members -> user_pts, each set in
ascending id, so concurrent batches do not deadlock; a lock conflict or a lost
idempotency race retries the whole transaction (``in_transaction``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from minitg.chat.v1 import chat_pb2, updates_pb2

from chat_service.adapters.rows import body_columns, body_from_row, in_transaction, placeholders
from chat_service.adapters.updatelog import LogBatch, PendingUpdate
from chat_service.domain.errors import ChatNotFound, ClientMsgIdReused
from chat_service.domain.model import Message, SendItem, SendResult, UpdateKind
from chat_service.wire import message_to_proto
from svckit.errors import DomainError
from svckit.metrics import MESSAGES_SENT, SEND_COMMIT_SECONDS
from svckit.ports import Database, Executor

Outcome = SendResult | DomainError


@dataclass
class _ChatBatch:
    """The fresh items of one chat within a batch, and what the chat's lock returned."""

    chat_id: int
    indexes: list[int] = field(default_factory=list)
    last_seq: int = 0
    date_ms: int = 0
    members: list[int] = field(default_factory=list)
    unread: dict[int, int] = field(default_factory=dict)


class MessageStore:
    """Sends messages (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def send(
        self,
        sender: int,
        session_id: str,
        items: Sequence[SendItem],
        now_ms: int,
        request_id: str,
    ) -> list[Outcome]:
        """One outcome per item, in order; the whole batch commits together."""
        attempts: list[_Send] = []

        async def work(tx: Executor) -> list[Outcome]:
            attempts.append(_Send(tx, sender, session_id, items, now_ms, request_id))
            return await attempts[-1].run()

        started = time.perf_counter()
        outcomes = await in_transaction(self._db, work)
        SEND_COMMIT_SECONDS.observe(time.perf_counter() - started)
        MESSAGES_SENT.inc(attempts[-1].inserted)
        return outcomes


class _Send:
    """One attempt of the send transaction."""

    def __init__(
        self,
        tx: Executor,
        sender: int,
        session_id: str,
        items: Sequence[SendItem],
        now_ms: int,
        request_id: str,
    ) -> None:
        self.tx, self.sender, self.session_id, self.items = tx, sender, session_id, items
        self.log = LogBatch(now_ms, request_id)
        self.now_ms = now_ms
        self.outcomes: list[Outcome | None] = [None] * len(items)
        self.twins: dict[int, int] = {}  # item index -> earlier index with the same id
        self.inserted = 0  # fresh messages this attempt wrote (repeats excluded)

    async def run(self) -> list[Outcome]:
        chats = await self._dedupe()
        for batch in sorted(chats.values(), key=lambda b: b.chat_id):
            await self._lock_chat(batch)
        live = [b for b in chats.values() if b.members]
        for batch in sorted(live, key=lambda b: b.chat_id):
            await self._count_unread(batch)
        if live:
            await self._insert(live)
        for index, first in self.twins.items():
            self.outcomes[index] = self.outcomes[first]
        return [o if o is not None else ChatNotFound() for o in self.outcomes]

    async def _dedupe(self) -> dict[int, _ChatBatch]:
        """Answer repeats from stored messages; group the fresh items by chat."""
        ids = list(dict.fromkeys(item.client_msg_id for item in self.items))
        rows = await self.tx.fetch(
            "SELECT id, chat_id, seq, date_ms, sender_pts, client_msg_id, body_kind, "
            "body_text, body_header, body_ciphertext, deleted_at_ms FROM messages "
            f"WHERE sender_id = $1 AND client_msg_id IN ({placeholders(len(ids), 2)})",
            self.sender,
            *ids,
        )
        stored = {str(r["client_msg_id"]): r for r in rows}
        first_of: dict[str, int] = {}
        chats: dict[int, _ChatBatch] = {}
        for index, item in enumerate(self.items):
            row = stored.get(item.client_msg_id)
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
            elif item.client_msg_id in first_of:
                first = self.items[first_of[item.client_msg_id]]
                if (first.chat_id, first.body) == (item.chat_id, item.body):
                    self.twins[index] = first_of[item.client_msg_id]
                else:
                    self.outcomes[index] = ClientMsgIdReused()
            else:
                first_of[item.client_msg_id] = index
                chats.setdefault(item.chat_id, _ChatBatch(item.chat_id)).indexes.append(index)
        return chats

    async def _lock_chat(self, batch: _ChatBatch) -> None:
        """Allocate the chat's seqs (only for a member); read its members under the lock."""
        row = await self.tx.fetchrow(
            "UPDATE chats SET last_seq = last_seq + $2, last_activity_ms = "
            "CASE WHEN last_activity_ms > $3 THEN last_activity_ms ELSE $3 END "
            "WHERE id = $1 AND EXISTS (SELECT 1 FROM chat_members "
            " WHERE chat_id = $1 AND user_id = $4) RETURNING last_seq, last_activity_ms",
            batch.chat_id,
            len(batch.indexes),
            self.now_ms,
            self.sender,
        )
        if row is None:
            return  # not a member: the items stay None -> CHAT_NOT_FOUND
        batch.last_seq, batch.date_ms = int(row["last_seq"]), int(row["last_activity_ms"])
        rows = await self.tx.fetch(
            "SELECT user_id FROM chat_members WHERE chat_id = $1 ORDER BY user_id", batch.chat_id
        )
        batch.members = [int(r["user_id"]) for r in rows]

    async def _count_unread(self, batch: _ChatBatch) -> None:
        """+k unread for the other members; the sender has read everything up to last_seq."""
        rows = await self.tx.fetch(
            "UPDATE chat_members SET unread_count = unread_count + $3 "
            "WHERE chat_id = $1 AND user_id <> $2 RETURNING user_id, unread_count",
            batch.chat_id,
            self.sender,
            len(batch.indexes),
        )
        batch.unread = {int(r["user_id"]): int(r["unread_count"]) for r in rows}
        await self.tx.execute(
            "UPDATE chat_members SET read_inbox_seq = $3, unread_count = 0 "
            "WHERE chat_id = $1 AND user_id = $2",
            batch.chat_id,
            self.sender,
            batch.last_seq,
        )

    async def _insert(self, live: Sequence[_ChatBatch]) -> None:
        """Allocate pts, insert the messages, fill and write their NewMessage updates."""
        planned: list[tuple[_ChatBatch, int, int]] = []  # (chat, item index, seq)
        for batch in live:
            first_seq = batch.last_seq - len(batch.indexes) + 1
            planned += [(batch, i, first_seq + n) for n, i in enumerate(batch.indexes)]
        planned.sort(key=lambda p: p[1])  # request order: pts follow it
        pending = [
            self.log.reserve(UpdateKind.NEW_MESSAGE, b.chat_id, b.members, self.session_id)
            for b, _, _ in planned
        ]
        await self.log.allocate(self.tx)
        args: list[object] = []
        for (batch, index, seq), update in zip(planned, pending, strict=True):
            item = self.items[index]
            args += [item.chat_id, seq, self.sender, item.client_msg_id, *body_columns(item.body)]
            args += [batch.date_ms, update.pts_of(self.sender)]
        width = 10
        values = ", ".join(f"({placeholders(width, n * width + 1)})" for n in range(len(planned)))
        rows = await self.tx.fetch(
            "INSERT INTO messages (chat_id, seq, sender_id, client_msg_id, body_kind, "
            "body_text, body_header, body_ciphertext, date_ms, sender_pts) "
            f"VALUES {values} RETURNING id, chat_id, seq",
            *args,
        )
        ids = {(int(r["chat_id"]), int(r["seq"])): int(r["id"]) for r in rows}
        self.inserted = len(ids)
        for (batch, index, seq), update in zip(planned, pending, strict=True):
            item = self.items[index]
            message = Message(
                ids[(batch.chat_id, seq)], batch.chat_id, seq, self.sender, batch.date_ms,
                item.body, client_msg_id=item.client_msg_id,
            )  # fmt: skip
            self._fill(update, batch, message, later=self._later_in_chat(batch, index))
            self.outcomes[index] = SendResult(
                message.id, seq, batch.date_ms, update.pts_of(self.sender)
            )
        await self.log.write(self.tx)

    @staticmethod
    def _later_in_chat(batch: _ChatBatch, index: int) -> int:
        """How many of the batch's messages to the same chat come after item ``index``."""
        return len(batch.indexes) - 1 - batch.indexes.index(index)

    def _fill(
        self, update: PendingUpdate, batch: _ChatBatch, message: Message, *, later: int
    ) -> None:
        """Shared NewMessage (no client_msg_id, no unread) plus per-member patches."""
        shared = updates_pb2.Update(
            new_message=updates_pb2.NewMessage(message=message_to_proto(message, for_user=0))
        )
        patches: dict[int, updates_pb2.Update] = {}
        for user_id, unread in batch.unread.items():
            if unread - later:
                patches[user_id] = updates_pb2.Update(
                    new_message=updates_pb2.NewMessage(unread_count=unread - later)
                )
        patches[self.sender] = updates_pb2.Update(
            new_message=updates_pb2.NewMessage(
                message=chat_pb2.Message(client_msg_id=message.client_msg_id)
            )
        )
        update.fill(shared, patches)
