"""svckit.adapters.cancellation: cleanup a task cancellation cannot cut short."""

from __future__ import annotations

import asyncio

import pytest

from svckit.adapters.cancellation import finish_despite_cancellation


async def test_cleanup_finishes_before_the_cancellation_is_delivered() -> None:
    """Cancelled twice while its cleanup runs, a task still sees the cleanup to its end,
    and only then ends cancelled."""
    steps: list[str] = []
    release = asyncio.Event()

    async def cleanup() -> str:
        steps.append("cleanup started")
        await release.wait()
        steps.append("cleanup done")
        return "rolled back"

    async def task_body() -> None:
        await finish_despite_cancellation(cleanup())
        steps.append("after cleanup")  # never reached: the cancel is re-raised

    task = asyncio.create_task(task_body())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()

    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ["cleanup started", "cleanup done"] == steps


async def test_result_is_returned_without_a_cancellation() -> None:
    """Not cancelled, it simply returns the cleanup's result."""

    async def cleanup() -> int:
        await asyncio.sleep(0)
        return 7

    assert 7 == await finish_despite_cancellation(cleanup())


async def test_a_timeout_around_it_still_fires_after_the_cleanup() -> None:
    """An asyncio.timeout that expires during the cleanup raises TimeoutError once the
    cleanup is done (the cancellation is not swallowed)."""
    done = asyncio.Event()

    async def cleanup() -> None:
        await asyncio.sleep(0.05)
        done.set()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await finish_despite_cancellation(cleanup())
    assert done.is_set()
