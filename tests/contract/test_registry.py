"""The connection registry on each hot-state adapter: adds, their coalescing, and the
epoch that tells a complete registry from one just (re)born."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from svckit.ports import HotState
from svckit.registry import EPOCH_KEY, REBUILD_SECONDS, ConnectionRegistry


def _batches() -> tuple[float, float]:
    labels = {"batch": "registry_add"}
    count = REGISTRY.get_sample_value("minitg_coalesced_batch_items_count", labels) or 0.0
    total = REGISTRY.get_sample_value("minitg_coalesced_batch_items_sum", labels) or 0.0
    return count, total


async def test_concurrent_adds_leave_together_and_all_land(state: HotState) -> None:
    registry = ConnectionRegistry(state, 60)
    before = _batches()
    await asyncio.gather(*(registry.add(user, "pod-a") for user in range(1, 301)))
    await registry.add(7, "pod-b")
    count, total = (a - b for a, b in zip(_batches(), before, strict=True))
    assert 301 == total
    assert count <= 3  # 300 concurrent adds: one or two pipelines, then the late one
    by_pod = await registry.pods_of(list(range(1, 301)))
    assert list(range(1, 301)) == sorted(by_pod["pod-a"])
    assert [7] == by_pod["pod-b"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_reborn_registry_is_in_doubt_until_rebuilt(state: HotState) -> None:
    """A user with no entry is in doubt for REBUILD_SECONDS after the epoch was (re)born
    (a fresh store, a restart, a flush) and offline after; the epoch changes only then."""
    clock = Clock()
    registry = ConnectionRegistry(state, 60, clock=clock)
    await registry.add(1, "pod-a")
    born = await registry.locate([1, 2])
    assert ({"pod-a": [1]}, [2], True) == (dict(born.by_pod), born.missing, born.in_doubt)
    epoch = await registry.epoch()
    clock.now += REBUILD_SECONDS
    later = await registry.locate([1, 2])
    assert (epoch, [2], False) == (await registry.epoch(), later.missing, later.in_doubt)
    assert 1 == await state.delete(EPOCH_KEY)  # what a restart or a flush does to it
    assert (await registry.locate([2])).in_doubt
    assert epoch != await registry.epoch()
