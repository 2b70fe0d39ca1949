"""Coalescing concurrent requests into batched calls (group commit without a timer).

A request submitted while fewer than ``max_in_flight`` batches are out goes at the next
turn of the event loop, with whatever else arrived in the same turn: an idle system adds
no latency. While every slot is busy, requests queue and leave together, up to
``max_items`` a call, as soon as a slot frees. Batches therefore grow with the load by
themselves, and the per-call cost (a gRPC round trip, a database transaction) is paid once
per batch instead of once per request.

Each submitter awaits its own outcome; a failure of the whole call fails every request of
that batch with the same exception. A batch runs in the context (request id, trace) of its
first request. A submitter that gives up (is cancelled) before its batch leaves is dropped
from it; once the batch is out, it runs to the end either way. ``post`` queues a request
nobody waits for (a fire-and-forget frame: no task, no future); a failed call is logged
as a warning, a refused item (its own bad input) at debug level.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from svckit import metrics

I = TypeVar("I")  # noqa: E741 - the item type
O = TypeVar("O")  # noqa: E741 - the outcome type

log = logging.getLogger("minitg.coalesce")


class Coalescer(Generic[I, O]):
    """Batches concurrent ``submit`` calls into ``call(items) -> outcomes`` (see above)."""

    def __init__(
        self,
        call: Callable[[list[I]], Awaitable[Sequence[O | BaseException]]],
        *,
        max_items: int,
        max_in_flight: int,
        name: str,
    ) -> None:
        self._call, self._max_items, self._max_in_flight = call, max_items, max_in_flight
        self._queue: list[tuple[I, asyncio.Future[O] | None, contextvars.Context]] = []
        self._name = name
        self._in_flight, self._scheduled = 0, False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sizes = metrics.COALESCED_BATCH_ITEMS.labels(name)

    async def submit(self, item: I) -> O:
        """Queue ``item``; return its outcome (or raise its error) once its batch returns."""
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, contextvars.copy_context()))
        self._schedule()
        return await future

    def post(self, item: I) -> None:
        """Queue ``item`` without waiting for its outcome (a failure is only logged)."""
        self._queue.append((item, None, contextvars.copy_context()))
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_items]
            del self._queue[: self._max_items]
            batch = [e for e in batch if e[1] is None or not e[1].cancelled()]
            if not batch:
                continue
            self._in_flight += 1
            self._sizes.observe(len(batch))
            task = asyncio.create_task(self._run(batch), context=batch[0][2])
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: list[tuple[I, asyncio.Future[O] | None, contextvars.Context]]
    ) -> None:
        failed = False
        try:
            outcomes: Sequence[O | BaseException] = await self._call([e[0] for e in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
        except asyncio.CancelledError:
            for _, future, _ in batch:
                if future is not None:
                    future.cancel()
            raise
        except Exception as exc:
            outcomes, failed = [exc] * len(batch), True
            posted = sum(1 for e in batch if e[1] is None)
            if posted:  # nobody else hears of it
                log.warning("a %s call failed for %d posted items: %s", self._name, posted, exc)
        finally:
            self._in_flight -= 1
            if self._queue and not self._scheduled:
                self._flush()
        self._hand_out(batch, outcomes, refusals=not failed)

    def _hand_out(
        self,
        batch: list[tuple[I, asyncio.Future[O] | None, contextvars.Context]],
        outcomes: Sequence[O | BaseException],
        refusals: bool,
    ) -> None:
        """Each waiting submitter gets its outcome; refused posts (the caller's own bad
        input, e.g. a malformed ack) are logged once a batch at debug level."""
        unheard: list[BaseException] = []
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if future is None:
                if isinstance(outcome, BaseException):
                    unheard.append(outcome)
            elif future.done():
                continue
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if refusals and unheard and log.isEnabledFor(logging.DEBUG):
            log.debug("%d posted %s items refused: %s", len(unheard), self._name, unheard[0])

    async def close(self) -> None:
        """Wait for the batches in flight (the queue is empty once submitters stopped)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
