"""The outbox relay: publishes committed fan-out to the gateway pods, at least once.

Each write transaction leaves one ``outbox`` row (a ``DeliveryBatch`` of items with all
their recipients, see ``updatelog``). The relay runs as one background task per chat
process. It is woken right after every commit (``wake()``, an in-process event) and also
polls every ``poll_seconds``, so rows left behind by a crash between commit and publish,
by another process or by a broker outage are published later instead of lost.

One round claims up to ``batch_rows`` unpublished rows in id order (PostgreSQL:
``FOR UPDATE SKIP LOCKED`` inside a transaction held while publishing, so several chat
processes share the queue without publishing a row twice at once; SQLite: a single process
owns the file, a plain SELECT). It hands the claimed rows' batches to the delivery
publisher (``svckit.delivery.PodPublisher``, shared with presence and auth), which looks up
the recipients' gateway pods in the connection registry with one round trip and publishes
one message per pod holding every claimed item that has a recipient there (only those
recipients), so a burst of sends costs one broker message per pod, not per message.
``Unroutable`` (the pod is gone) skips that pod; anything else (``BusUnavailable``, the
registry down) leaves the rows unpublished with ``attempts`` raised, to be retried next
round: pods that already got them see a duplicate, which clients drop by pts.

A recipient with no registry entry is offline and skipped, except while the registry is
in doubt (just (re)born: Redis restarted and the gateways are re-registering, see
``svckit.registry``): then the row is not marked published. A handed-over row waits in
this relay's memory, narrowed to the recipients not reached yet, and is retried after
``RETRY_SECONDS`` (and with every round that publishes newer rows, so it goes first); a
polled row stays unpublished for the next polling round, due ``RETRY_SECONDS`` later, and
the relay remembers (for at most ``MAX_WAITING_ROWS`` rows) the recipients it has still to
reach, so that round publishes only to them: a recipient already reached does not get the
row again every round while the doubt lasts. (If another chat process claims the row
meanwhile, it publishes it whole: a duplicate, dropped by pts.)
Handed-over rows whose publish failed (Redis or the broker down) wait and are retried
the same way, instead of waiting ``HAND_OVER_GRACE_MS`` for polling: an online recipient
gets them within about a second of the outage ending.

The send path does not wait for a polling round: its transaction writes the row with
``handed_over`` set and, once committed, hands the row (id and the batch object) to this
process's relay (``hand_over``), whose next round publishes it from memory: no claim
transaction, no decoding. The published rows are marked with one UPDATE at most every
``mark_every_seconds`` (0.25 s; not one committed UPDATE per round, which under load was
one more commit per send batch). Polling rounds skip such a row until it is
``HAND_OVER_GRACE_MS`` old, so the relay of another chat process never races its writer
for it; if the writer did not publish it (a crash, a broker outage), or crashed between
publishing and marking it, polling publishes it after the grace, at least once as ever
(a device drops the second copy by its pts).

Each cycle also samples the relay's gauges: the age of the oldest unpublished row
(``minitg_outbox_lag_seconds``) and the database connections in use (``minitg_db_pool_in_use``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from minitg.delivery.v1 import delivery_pb2

from chat_service.adapters.rows import among
from chat_service.adapters.updatelog import Outboxed
from svckit.delivery import PodDirectory, PodPublisher, Remainders
from svckit.metrics import DB_POOL_IN_USE, OUTBOX_LAG, OUTBOX_PUBLISHED_ROWS
from svckit.ports import Database, Executor, MessageBus, Row

log = logging.getLogger("minitg.chat.outbox")

# Unpublished rows, but not rows handed over to their writer's relay (see ``hand_over``)
# until they are HAND_OVER_GRACE_MS old: by then that relay has published them or failed.
_CLAIM = (
    "SELECT id, payload FROM outbox WHERE published_at_ms IS NULL "
    "AND (handed_over = $2 OR created_at_ms < $3) ORDER BY id LIMIT $1"
)
HAND_OVER_GRACE_MS = 5_000
MARK_EVERY_SECONDS = 0.25  # published handed-over rows wait at most this long to be marked
_OLDEST = "SELECT created_at_ms FROM outbox WHERE published_at_ms IS NULL ORDER BY id LIMIT 1"
_TRIM_EVERY_SECONDS = 60.0
_OBSERVE_EVERY_SECONDS = 1.0  # the lag and pool gauges, refreshed at most this often
_KEEP_PUBLISHED_MS = 3_600_000
RETRY_SECONDS = 0.5  # a row not fully delivered (registry in doubt, outage) is tried again
MAX_WAITING_ROWS = 20_000  # beyond this, the oldest waiting rows are left to polling
_WARN_EVERY_SECONDS = 10.0


def pool_in_use(db: Database) -> int:
    """Connections checked out of the database's pool; 0 for an adapter without a pool."""
    sample = getattr(db, "pool_in_use", None)
    return int(sample()) if callable(sample) else 0


async def mark_published(ex: Executor, ids: Sequence[int], now_ms: int) -> None:
    """Set ``published_at_ms`` on the rows (one statement with a fixed text on PostgreSQL)."""
    where, args = among(ex, "id", ids, 2)
    await ex.execute(f"UPDATE outbox SET published_at_ms = $1 WHERE {where}", now_ms, *args)


class OutboxRelay:
    """Publishes outbox rows (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        bus: MessageBus,
        pods: PodDirectory,
        *,
        poll_seconds: float,
        batch_rows: int = 200,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
        role: str = "chat",
        mark_every_seconds: float = MARK_EVERY_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._db = db
        self._publisher = PodPublisher(bus, pods, role, clock=clock)
        self._poll, self._batch_rows, self._clock = poll_seconds, batch_rows, clock
        self._wake = asyncio.Event()
        self._handed: list[Outboxed] = []
        self._waiting: list[Outboxed] = []  # handed-over rows to retry (narrowed batches)
        self._retry_seconds = retry_seconds
        self._waiting_due = float("inf")  # monotonic: the waiting rows' next retry
        self._repoll_at = float("inf")  # monotonic: a polling round for rows left in doubt
        self._polled_rest: dict[int, delivery_pb2.DeliveryBatch] = {}  # see _publish_and_mark
        self._warned = float("-inf")
        self._unmarked: list[int] = []  # handed-over rows published but not yet marked
        self._mark_every, self._marked_at = mark_every_seconds, time.monotonic()
        self._poll_due = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_trim = 0.0
        self._observed = float("-inf")
        self._retention_ms = retention_days * 86_400_000
        self._role = role

    def wake(self) -> None:
        """Ask for a polling round now (called after each commit that wrote an outbox row
        it did not hand over)."""
        self._poll_due = True
        self._wake.set()

    def hand_over(self, row: Outboxed) -> None:
        """Publish a just-committed outbox row from memory in the next round (the send
        path's rows, written with ``handed_over``): no claim transaction, no decoding."""
        self._handed.append(row)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-outbox-relay")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let the task finish its round (cancelled after ``grace_seconds``), publish what
        was handed over since and mark what it published, so no relay publishes it again."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), grace_seconds)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self.publish_handed_over()
            await self.mark_published_rows()
        except Exception:
            log.warning("outbox: marking %d published rows at shutdown failed; polling "
                        "will publish them again", len(self._unmarked), exc_info=True)  # fmt: skip

    async def _run(self) -> None:
        poll = True  # a polling round: at start, when woken by wake(), after each timeout
        while not self._stopping:
            self._wake.clear()
            poll, self._poll_due = poll or self._poll_due, False
            if time.monotonic() >= self._repoll_at:  # polled rows left in doubt are due
                poll, self._repoll_at = True, float("inf")
            try:
                await self.publish_handed_over()
                if time.monotonic() - self._marked_at >= self._mark_every:
                    await self.mark_published_rows()
                while poll and await self.publish_pending() == self._batch_rows:
                    pass
                await self._trim_now_and_then()
                if time.monotonic() - self._observed >= _OBSERVE_EVERY_SECONDS:
                    self._observed = time.monotonic()
                    await self.observe()  # a query: not on every round under load
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed; retrying after the poll interval")
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self._wait_seconds())
                poll = False
            except TimeoutError:
                poll = True

    def _wait_seconds(self) -> float:
        """Until the next polling round, or sooner when published rows wait to be marked
        or rows not fully delivered wait for their retry."""
        now = time.monotonic()
        wait = min(self._poll, max(0.0, min(self._repoll_at, self._waiting_due) - now))
        if not self._unmarked:
            return wait
        return min(wait, max(0.0, self._marked_at + self._mark_every - now))

    async def mark_published_rows(self) -> int:
        """Mark the handed-over rows published so far (one statement); return how many."""
        ids = list(self._unmarked)
        self._marked_at = time.monotonic()
        if not ids:
            return 0
        await mark_published(self._db, ids, int(self._clock() * 1000))
        del self._unmarked[: len(ids)]
        return len(ids)

    async def publish_handed_over(self) -> int:
        """Publish the rows handed over since the last round, after the waiting ones (see
        the module docstring); the rows that reached every recipient are marked published
        by ``mark_published_rows`` (the run loop's, every ``mark_every_seconds``), the rest
        wait for a retry. Return how many rows were fully published."""
        rows = self._handed
        if self._waiting and (rows or time.monotonic() >= self._waiting_due):
            rows = self._waiting + rows  # older first: each recipient gets them in order
            self._waiting, self._waiting_due = [], float("inf")
        self._handed = []
        if not rows:
            return 0
        try:
            left = await self._publish([r.batch for r in rows])
        except Exception as exc:
            self._wait([*rows], f"publishing {len(rows)} handed-over rows failed ({exc!r})")
            return 0
        done = [r.row_id for r, rest in zip(rows, left, strict=True) if rest is None]
        later = [
            Outboxed(r.row_id, rest) for r, rest in zip(rows, left, strict=True) if rest is not None
        ]
        if later:
            self._wait(later, "")
        self._unmarked.extend(done)
        OUTBOX_PUBLISHED_ROWS.inc(len(done))
        return len(done)

    def _wait(self, rows: list[Outboxed], failure: str) -> None:
        """Keep ``rows`` for a retry in ``RETRY_SECONDS`` (at most ``MAX_WAITING_ROWS``:
        the oldest beyond it are left to polling, which takes them after the grace)."""
        self._waiting = rows + self._waiting if failure else self._waiting + rows
        dropped = len(self._waiting) - MAX_WAITING_ROWS
        if dropped > 0:
            del self._waiting[:dropped]
        now = time.monotonic()
        self._waiting_due = min(self._waiting_due, now + self._retry_seconds)
        if (failure or dropped > 0) and now - self._warned >= _WARN_EVERY_SECONDS:
            self._warned = now
            log.warning("outbox: %s; %d rows wait for a retry in %.1f s (%d left to polling)",
                        failure or "too many rows wait", len(self._waiting), self._retry_seconds,
                        max(0, dropped))  # fmt: skip

    async def publish_pending(self) -> int:
        """One polling round; return how many rows were published (0 also when it failed)."""
        claim = (self._batch_rows, False, int(self._clock() * 1000) - HAND_OVER_GRACE_MS)
        if self._db.dialect == "postgres":
            async with self._db.transaction() as tx:
                rows = await tx.fetch(_CLAIM + " FOR UPDATE SKIP LOCKED", *claim)
                published = await self._publish_and_mark(tx, rows)
        else:
            rows = await self._db.fetch(_CLAIM, *claim)
            published = await self._publish_and_mark(self._db, rows)
        OUTBOX_PUBLISHED_ROWS.inc(published)
        return published

    async def observe(self) -> None:
        """Set the gauges: the oldest unpublished row's age (0 when none), the pool in use."""
        oldest = await self._db.fetchval(_OLDEST)
        lag_ms = self._clock() * 1000 - int(oldest) if oldest is not None else 0.0
        OUTBOX_LAG.set(max(0.0, lag_ms / 1000))
        DB_POOL_IN_USE.labels(self._role).set(pool_in_use(self._db))

    async def _publish_and_mark(self, ex: Executor, rows: Sequence[Row]) -> int:
        """Publish the claimed rows (a row a registry in doubt left unfinished: only to the
        recipients it has still to reach) and mark those that reached everyone."""
        if len(rows) < self._batch_rows and self._polled_rest:
            self._forget_unclaimed(rows)
        if not rows:
            return 0
        ids = [int(r["id"]) for r in rows]
        batches = [delivery_pb2.DeliveryBatch.FromString(r["payload"]) for r in rows]
        if self._polled_rest:
            batches = [self._polled_rest.get(i, b) for i, b in zip(ids, batches, strict=True)]
        try:
            left = await self._publish(batches)
        except Exception:
            log.warning("outbox: publishing %d rows failed; will retry", len(ids), exc_info=True)
            where, args = among(ex, "id", ids)
            await ex.execute(f"UPDATE outbox SET attempts = attempts + 1 WHERE {where}", *args)
            return 0
        done = [i for i, rest in zip(ids, left, strict=True) if rest is None]
        if len(done) < len(ids):  # the registry is in doubt: the rest of those rows, soon
            self._repoll_at = min(self._repoll_at, time.monotonic() + self._retry_seconds)
            self._remember_rest(ids, left)
        if self._polled_rest:
            for row_id in done:
                self._polled_rest.pop(row_id, None)
        if done:
            await mark_published(ex, done, int(self._clock() * 1000))
        return len(done)

    def _remember_rest(self, ids: Sequence[int], left: Remainders) -> None:
        """Keep what each polled row has still to reach for the next polling round (at
        most ``MAX_WAITING_ROWS`` rows: beyond that the oldest go out whole again)."""
        for row_id, rest in zip(ids, left, strict=True):
            if rest is not None:
                self._polled_rest[row_id] = rest
        while len(self._polled_rest) > MAX_WAITING_ROWS:
            del self._polled_rest[next(iter(self._polled_rest))]

    def _forget_unclaimed(self, rows: Sequence[Row]) -> None:
        """A round that claimed every unpublished row it could: the remainders of rows it
        did not claim (marked by another chat process meanwhile) are stale."""
        claimed = {int(r["id"]) for r in rows}
        self._polled_rest = {i: b for i, b in self._polled_rest.items() if i in claimed}

    async def _publish(self, batches: Sequence[delivery_pb2.DeliveryBatch]) -> Remainders:
        """Publish to every pod holding recipients; return, per batch, the part left for
        a retry (recipients the registry may not know yet) or None when it is done."""
        return (await self._publisher.publish(batches)).remainders

    async def _trim_now_and_then(self) -> None:
        """Delete outbox rows published long ago (they only matter until published) and
        update-log rows past retention (GetDifference then answers TOO_LONG)."""
        now = self._clock()
        if now - self._last_trim < _TRIM_EVERY_SECONDS:
            return
        self._last_trim = now
        await self._db.execute(
            "DELETE FROM outbox WHERE published_at_ms IS NOT NULL AND published_at_ms < $1",
            int(now * 1000) - _KEEP_PUBLISHED_MS,
        )
        await self._db.execute(
            "DELETE FROM updates WHERE date_ms < $1", int(now * 1000) - self._retention_ms
        )
