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
from it; once the batch is out, it runs to the end either way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from svckit import metrics

I = TypeVar("I")  # noqa: E741 - the item type
O = TypeVar("O")  # noqa: E741 - the outcome type


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
        self._queue: list[tuple[I, asyncio.Future[O], contextvars.Context]] = []
        self._in_flight, self._scheduled = 0, False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sizes = metrics.COALESCED_BATCH_ITEMS.labels(name)

    async def submit(self, item: I) -> O:
        """Queue ``item``; return its outcome (or raise its error) once its batch returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[O] = loop.create_future()
        self._queue.append((item, future, contextvars.copy_context()))
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_items]
            del self._queue[: self._max_items]
            batch = [entry for entry in batch if not entry[1].cancelled()]
            if not batch:
                continue
            self._in_flight += 1
            self._sizes.observe(len(batch))
            task = asyncio.create_task(self._run(batch), context=batch[0][2])
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[I, asyncio.Future[O], contextvars.Context]]) -> None:
        try:
            outcomes: Sequence[O | BaseException] = await self._call([e[0] for e in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} requests")
        except asyncio.CancelledError:
            for _, future, _ in batch:
                future.cancel()
            raise
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:
            self._in_flight -= 1
            if self._queue and not self._scheduled:
                self._flush()
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def close(self) -> None:
        """Wait for the batches in flight (the queue is empty once submitters stopped)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
