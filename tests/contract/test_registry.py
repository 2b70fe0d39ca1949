"""The connection registry on each hot-state adapter: adds, and their coalescing."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from svckit.ports import HotState
from svckit.registry import ConnectionRegistry


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
