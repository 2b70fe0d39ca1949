"""The shared revoked-session list on each hot-state adapter: answers, and coalescing."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from svckit.ports import HotState
from svckit.revocations import RevocationList


def _batches() -> tuple[float, float]:
    labels = {"batch": "revocation_check"}
    count = REGISTRY.get_sample_value("minitg_coalesced_batch_items_count", labels) or 0.0
    total = REGISTRY.get_sample_value("minitg_coalesced_batch_items_sum", labels) or 0.0
    return count, total


async def test_concurrent_checks_share_one_read(state: HotState) -> None:
    revocations = RevocationList(state, 60)
    await revocations.add("s-3")
    await revocations.add("s-250")
    before = _batches()
    sessions = [f"s-{i}" for i in range(300)]
    answers = await asyncio.gather(*(revocations.contains(s) for s in sessions))
    count, total = (a - b for a, b in zip(_batches(), before, strict=True))
    assert ["s-3", "s-250"] == [s for s, revoked in zip(sessions, answers, strict=True) if revoked]
    assert (1, 300) == (count, total)
