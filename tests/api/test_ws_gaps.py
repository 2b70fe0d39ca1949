"""A client that misses a live update notices the pts gap and recovers it by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from svckit.backends import open_hot_state
from svckit.registry import ConnectionRegistry, registry_namespace
from tests.api.ws_support import clients, direct_pair
from tests.harness import System, running_system


async def _registry(system: System) -> ConnectionRegistry:
    cfg = system.cfg
    state = await open_hot_state(
        cfg.redis_url, registry_namespace(cfg.redis_prefix), embedded=system.embedded
    )
    return ConnectionRegistry(state, cfg.messaging.registry_ttl_seconds)


async def test_lost_delivery_is_recovered_from_the_gap(shape: str, tmp_path: Path) -> None:
    """A fan-out that misses B (its registry entry gone) shows up as a gap B fills itself."""
    async with running_system(shape, tmp_path) as system:
        ann, bob, chat = await direct_pair(system)
        registry = await _registry(system)
        async with clients(system, ann, bob) as (a, b):
            await asyncio.sleep(0.3)
            while not b.updates.empty():
                b.updates.get_nowait()
            await registry.remove(bob.user_id, system.cfg.pod_id)  # the next fan-out misses B
            lost = await a.send_text(chat["id"], "you will miss this live")
            await asyncio.sleep(0.5)
            assert b.updates.empty(), "the first message really was not delivered live"
            await registry.add(bob.user_id, system.cfg.pod_id)
            seen = await a.send_text(chat["id"], "and this one reveals the gap")
            first, second = await b.next_update(), await b.next_update()
            assert [lost.message_id, seen.message_id] == [
                first.new_message.message.id,
                second.new_message.message.id,
            ]
            assert (first.pts + 1, second.pts) == (second.pts, b.pts)
