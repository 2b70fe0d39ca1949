"""Appending to the per-user update log and the fan-out outbox, inside a write transaction.

A write (send, read, invite, ...) reserves its updates on a ``LogBatch``, lets the batch
allocate every recipient's next pts with ONE upsert on ``user_pts`` (sorted by user id, so
concurrent transactions lock counters in the same order and cannot deadlock on them),
fills in the payloads (which may need the pts, e.g. a message's ``sender_pts``), then
writes the ``updates`` rows and ONE ``outbox`` row for the whole transaction.

Stored forms:

* ``updates.payload`` is the recipient's complete ``Update``: the shared encoding followed
  by the recipient's patch encoding, which protobuf decodes as their merge.
* ``outbox.payload`` is a ``DeliveryBatch`` holding every item with ALL its recipients
  (not yet split by gateway pod); the relay splits it per pod at publish time, when it
  knows where the recipients are connected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from minitg.chat.v1 import updates_pb2
from minitg.delivery.v1 import delivery_pb2

from chat_service.adapters.write_sql import OUTBOX_INSERT, WriteSql
from chat_service.domain.model import UpdateKind
from chat_service.domain.pts import assign_pts, pts_counts
from svckit import tracing
from svckit.ports import Executor


@dataclass
class PendingUpdate:
    """One logged update for a set of recipients; payloads are filled after allocation."""

    kind: UpdateKind
    chat_id: int
    recipients: tuple[int, ...]
    exclude_session_id: str = ""
    pts: dict[int, int] = field(default_factory=dict)
    shared: updates_pb2.Update | None = None
    patches: dict[int, updates_pb2.Update] = field(default_factory=dict)

    def pts_of(self, user_id: int) -> int:
        """The recipient's log position after this update (after ``allocate``)."""
        return self.pts[user_id]

    def fill(
        self,
        shared: updates_pb2.Update,
        patches: Mapping[int, updates_pb2.Update] | None = None,
    ) -> None:
        """Set the shared update (per-recipient fields left zero) and optional patches
        (only read: each recipient's row merges its patch into a copy, so recipients with
        equal patches may share one object)."""
        self.shared = shared
        self.patches = dict(patches or {})


@dataclass(frozen=True, slots=True)
class Outboxed:
    """A written outbox row and the batch it holds (for a hand-over after the commit)."""

    row_id: int
    batch: delivery_pb2.DeliveryBatch


class LogBatch:
    """The updates one transaction appends (see the module docstring)."""

    def __init__(self, sql: WriteSql, date_ms: int, request_id: str) -> None:
        self._sql, self.date_ms, self.request_id = sql, date_ms, request_id
        self._pending: list[PendingUpdate] = []

    def reserve(
        self,
        kind: UpdateKind,
        chat_id: int,
        recipients: Iterable[int],
        exclude_session_id: str = "",
    ) -> PendingUpdate:
        pending = PendingUpdate(kind, chat_id, tuple(recipients), exclude_session_id)
        self._pending.append(pending)
        return pending

    def pts_counts(self) -> dict[int, int]:
        """How many pts each recipient of the reserved updates needs."""
        return pts_counts(p.recipients for p in self._pending)

    def assign(self, last: Mapping[int, int]) -> None:
        """Give out the pts ending at ``last[user]`` (after the counters were bumped by
        ``pts_counts()``), in reserve order (``domain.pts``)."""
        assigned = assign_pts([p.recipients for p in self._pending], last)
        for pending, given in zip(self._pending, assigned, strict=True):
            pending.pts = given

    async def allocate(self, tx: Executor) -> None:
        """Give every recipient of every reserved update its next pts, in reserve order."""
        self.assign(await self._sql.bump_pts(tx, self.pts_counts()))

    def rows(self) -> tuple[list[tuple[object, ...]], delivery_pb2.DeliveryBatch]:
        """The ``updates`` rows (user_id, pts, kind, chat_id, payload, date_ms) of the
        filled updates and the outbox's DeliveryBatch holding them (no rows: nothing to log)."""
        rows: list[tuple[object, ...]] = []
        envelope = delivery_pb2.DeliveryBatch(
            request_id=self.request_id, trace_context=tracing.carrier()
        )
        for pending in self._pending:
            if pending.shared is None or not pending.recipients:
                continue
            shared = updates_pb2.Update()
            shared.CopyFrom(pending.shared)
            shared.pts_count, shared.date_ms = 1, self.date_ms
            shared_bytes = shared.SerializeToString()
            item = envelope.items.add(exclude_session_id=pending.exclude_session_id)
            item.update.CopyFrom(shared)
            kind, chat_id, patches = int(pending.kind), pending.chat_id, pending.patches
            for user_id in pending.recipients:
                patch = item.recipients.add(user_id=user_id).patch  # built in place
                source = patches.get(user_id)
                if source is not None:
                    patch.MergeFrom(source)
                pts = patch.pts = pending.pts[user_id]
                payload = shared_bytes + patch.SerializeToString()
                rows.append((user_id, pts, kind, chat_id, payload, self.date_ms))
        return rows, envelope

    async def write(self, tx: Executor, *, hand_over: bool = False) -> Outboxed | None:
        """Insert the update rows and the transaction's outbox row (None when there was
        nothing to log). ``hand_over`` marks the row as one its writer publishes itself
        after the commit (``OutboxRelay.hand_over``)."""
        rows, envelope = self.rows()
        if not rows:
            return None
        await self._sql.insert_updates(tx, rows)
        row_id = await tx.fetchval(
            OUTBOX_INSERT, envelope.SerializeToString(), self.date_ms, hand_over
        )
        return Outboxed(int(row_id), envelope)
