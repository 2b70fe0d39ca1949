"""The shared revoked-session list on each hot-state adapter: answers, coalescing, and
what it says after the store forgot it (a Redis restart or flush) until it is rebuilt."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from yarl import URL

from auth_service.usecases.revocation_keeper import RevocationKeeper
from svckit.backends import open_hot_state
from svckit.ports import HotState
from svckit.revocations import (
    COMPLETE_KEY,
    REBUILDING_KEY,
    VERSION_KEY,
    RebuildInterrupted,
    RevocationList,
)
from tests.contract.conftest import REDIS_URL, HotStateFactory, TcpProxy, unique


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


async def test_unlisted_is_unknown_until_the_list_is_complete(state: HotState) -> None:
    """Without the sentinel an unlisted id is None (ask auth); after a rebuild it is False."""
    revocations = RevocationList(state, 60)
    await revocations.add("gone")
    assert [True, None] == [await revocations.contains(s) for s in ("gone", "live")]
    await revocations.rebuild(["old"])
    answers = [await revocations.contains(s) for s in ("gone", "live", "old")]
    assert [True, False, True] == answers


async def test_keeper_rebuilds_what_the_store_forgot(state: HotState) -> None:
    """A flushed list (sentinel gone) is rebuilt from the database's recent revocations."""
    revocations = RevocationList(state, 60)
    asked: list[int] = []

    async def revoked_since(since_ms: int) -> list[str]:  # stands in for the auth database
        asked.append(since_ms)
        return ["s-1", "s-2"]

    keeper = RevocationKeeper(revocations, revoked_since, now_ms=lambda: 100_000)
    await keeper.round()
    assert [100_000 - 60_000] == asked
    await state.delete(COMPLETE_KEY, "revoked:s-1", "revoked:s-2")  # what a flush leaves
    assert [None, None] == [await revocations.contains(s) for s in ("s-1", "s-3")]
    await keeper.round()
    assert [True, False] == [await revocations.contains(s) for s in ("s-1", "s-3")]
    await keeper.round()  # complete: no further database read
    assert 2 == len(asked)


async def test_keeper_retries_an_add_made_while_redis_was_down() -> None:
    """Redis only (memory cannot be unreachable): a sign-out's add during an outage does
    not raise, and lands in the list once Redis answers again."""
    upstream = URL(REDIS_URL)
    proxy = TcpProxy(upstream.host or "127.0.0.1", upstream.port or 6379)
    await proxy.start()
    factory = HotStateFactory("redis")
    namespace = unique("minitg-test:") + ":"
    direct = await factory.open(namespace)  # the same keys, not through the proxy
    proxied_url = str(upstream.with_host("127.0.0.1").with_port(proxy.port))
    proxied = await open_hot_state(proxied_url, namespace)

    async def nothing_revoked(since_ms: int) -> list[str]:
        return []

    try:
        keeper = RevocationKeeper(RevocationList(proxied, 60), nothing_revoked, lambda: 0)
        await proxy.stop()
        await keeper.add("s-out")
        assert None is await RevocationList(direct, 60).contains("s-out")
        await proxy.start()
        await keeper.round()
        assert True is await RevocationList(direct, 60).contains("s-out")
    finally:
        await proxied.close()
        await proxy.stop()
        await factory.cleanup()


async def test_keeper_notices_a_store_restored_from_an_older_snapshot(state: HotState) -> None:
    """Sentinel kept but the latest entry lost (the version went back): rebuilt next round."""
    revocations = RevocationList(state, 60)
    in_database = ["s-old"]

    async def revoked_since(since_ms: int) -> list[str]:
        return list(in_database)

    keeper = RevocationKeeper(revocations, revoked_since, now_ms=lambda: 100_000)
    await keeper.round()
    in_database.append("s-new")
    await keeper.add("s-new")
    await state.delete("revoked:s-new")  # what a restore from the older snapshot leaves
    await state.incr(VERSION_KEY, -1)
    assert False is await revocations.contains("s-new")  # complete, yet wrong
    await keeper.round()
    assert [True, True] == [await revocations.contains(s) for s in ("s-old", "s-new")]
    assert (True, 3) == await revocations.status()  # past the version the keeper had seen


class _FlushedWhileWriting:
    """The real store, forgetting everything (as a flush would) right after a bulk write."""

    def __init__(self, state: HotState) -> None:
        self._state = state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None = None) -> None:
        await self._state.set_many(items, ttl)
        await self._state.delete(REBUILDING_KEY, COMPLETE_KEY, *(k for k, _ in items))


async def test_rebuild_forgotten_midway_is_not_marked_complete(state: HotState) -> None:
    """A flush during the rebuild's writes: no completion mark over a partial list."""
    revocations = RevocationList(_FlushedWhileWriting(state), 60)  # type: ignore[arg-type]
    with pytest.raises(RebuildInterrupted):
        await revocations.rebuild(["s-1"])
    assert None is await RevocationList(state, 60).contains("s-1")
