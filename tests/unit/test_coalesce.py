"""svckit.coalesce: concurrent requests leave in batched calls, each gets its own outcome."""

from __future__ import annotations

import asyncio
import contextvars
import logging

import pytest

from svckit.coalesce import Coalescer

TAG: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="")


class Backend:
    """A batched call that records its batches and can be held, failed or answer per item."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.tags: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def call(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        self.tags.append(TAG.get())
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def submit_tagged(batcher: Coalescer[int, int], item: int) -> int:
    TAG.set(f"t{item}")
    return await batcher.submit(item)


async def test_requests_of_one_turn_leave_together_and_get_their_own_outcomes() -> None:
    backend = Backend()
    batcher = Coalescer(backend.call, max_items=100, max_in_flight=1, name="t")
    results = await asyncio.gather(
        *(submit_tagged(batcher, i) for i in (2, 3, 4)), return_exceptions=True
    )
    assert [[2, 3, 4]] == backend.batches
    assert ["t2"] == backend.tags  # the batch runs in its first request's context
    assert 20 == results[0] and 40 == results[2]
    assert isinstance(results[1], ValueError)


async def test_requests_queue_while_every_slot_is_busy_and_respect_the_batch_size() -> None:
    backend = Backend()
    backend.gate.clear()
    batcher = Coalescer(backend.call, max_items=3, max_in_flight=2, name="t")
    first = [asyncio.create_task(batcher.submit(2))]
    await asyncio.sleep(0.01)
    second = [asyncio.create_task(batcher.submit(4))]
    await asyncio.sleep(0.01)
    assert [[2], [4]] == backend.batches  # two slots, both busy now
    queued = [asyncio.create_task(batcher.submit(i)) for i in (6, 8, 10, 12, 14)]
    await asyncio.sleep(0.01)
    assert 2 == len(backend.batches), "nothing leaves while both slots are busy"
    backend.gate.set()
    assert [60, 80, 100, 120, 140] == await asyncio.gather(*queued)
    await asyncio.gather(*first, *second)
    assert [[2], [4], [6, 8, 10], [12, 14]] == backend.batches


async def test_a_failed_call_fails_every_request_of_its_batch() -> None:
    backend = Backend()
    backend.fail = ConnectionError("down")
    batcher = Coalescer(backend.call, max_items=10, max_in_flight=1, name="t")
    results = await asyncio.gather(*(batcher.submit(i) for i in (2, 4)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    backend.fail = None
    assert 60 == await batcher.submit(6)  # and the next batch goes out as usual


async def test_a_request_cancelled_before_its_batch_leaves_is_dropped() -> None:
    backend = Backend()
    backend.gate.clear()
    batcher = Coalescer(backend.call, max_items=10, max_in_flight=1, name="t")
    busy = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    given_up = asyncio.create_task(batcher.submit(4))
    kept = asyncio.create_task(batcher.submit(6))
    await asyncio.sleep(0.01)
    given_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await given_up
    backend.gate.set()
    assert (20, 60) == (await busy, await kept)
    assert [[2], [6]] == backend.batches
    await batcher.close()


async def test_posted_requests_ride_in_the_same_batches_and_their_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """post() queues without waiting: the item leaves with the submitted ones of its turn,
    its outcome goes nowhere; a refused posted item is logged at debug level once per
    batch, a failed call with posted items as a warning."""
    caplog.set_level(logging.DEBUG, logger="minitg.coalesce")
    backend = Backend()
    batcher = Coalescer(backend.call, max_items=10, max_in_flight=1, name="acks")
    batcher.post(2)
    batcher.post(3)  # answered with an error, which nobody awaits
    assert 40 == await batcher.submit(4)
    await batcher.close()
    assert [[2, 3, 4]] == backend.batches
    refused = [r for r in caplog.records if "posted acks items refused" in r.getMessage()]
    assert 1 == len(refused) and "odd 3" in refused[0].getMessage()
    assert logging.DEBUG == refused[0].levelno
    backend.fail = ConnectionError("down")
    batcher.post(6)
    await asyncio.sleep(0.01)
    await batcher.close()
    failed = caplog.records[-1]
    assert "a acks call failed for 1 posted items: down" == failed.getMessage()
    assert logging.WARNING == failed.levelno
