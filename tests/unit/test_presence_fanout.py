"""Presence fan-out while the connection registry is being rebuilt (after a Redis restart):
a recipient with no entry yet is retried, not treated as offline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from minitg.delivery.v1 import delivery_pb2

from presence_service.adapters.fanout import DeliveryFanout
from presence_service.domain.events import PresenceEvent, Push, TypingEvent
from svckit.adapters.memory_bus import MemoryBus
from svckit.adapters.memory_state import MemoryHotState
from svckit.ports import Delivery
from svckit.registry import REBUILD_SECONDS, ConnectionRegistry


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_push_for_a_user_not_yet_re_registered_is_held_until_placed() -> None:
    """In doubt, a presence push for a user with no entry is held (typing is not) and sent
    once the user's pod re-registers; after the doubt a user still missing is offline."""
    clock, bus = Clock(), MemoryBus()
    registry = ConnectionRegistry(MemoryHotState(), 60, clock=clock)
    got: list[list[str]] = []
    arrived = asyncio.Event()

    async def collect(delivery: Delivery) -> None:
        batch = delivery_pb2.DeliveryBatch.FromString(delivery.body)
        got.append([i.WhichOneof("event") or "" for i in batch.items])
        arrived.set()

    await bus.subscribe("q-pod-b", "pod-b", collect)
    fanout = DeliveryFanout(registry, bus)
    online = Push(PresenceEvent(9, True, 0), (2, 3))
    typing = Push(TypingEvent(5, 9, 5000), (2,))
    assert 0 == await fanout.publish([online, typing])  # the registry was just born
    await registry.add(2, "pod-b")  # user 2's gateway re-registers
    await fanout.retry_held()
    await asyncio.wait_for(arrived.wait(), 5)
    assert [["presence_changed"]] == got
    clock.now += REBUILD_SECONDS  # user 3 is offline: the held push for them is dropped
    await fanout.retry_held()
    await fanout.retry_held()
    await asyncio.sleep(0.1)
    assert [["presence_changed"]] == got


async def test_a_held_push_goes_only_to_recipients_not_reached_yet() -> None:
    """In doubt, a push reaches its placed recipient at once; the retry of what was held
    goes to the late recipient only, so nobody gets the event twice."""
    bus = MemoryBus()
    registry = ConnectionRegistry(MemoryHotState(), 60)
    got: dict[str, list[list[int]]] = {"pod-a": [], "pod-b": []}

    def inbox(pod: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(delivery: Delivery) -> None:
            batch = delivery_pb2.DeliveryBatch.FromString(delivery.body)
            got[pod].extend([r.user_id for r in i.recipients] for i in batch.items)

        return handle

    for pod in got:
        await bus.subscribe(f"q-{pod}", pod, inbox(pod))
    await registry.add(2, "pod-a")
    fanout = DeliveryFanout(registry, bus)
    assert 1 == await fanout.publish([Push(PresenceEvent(9, True, 0), (2, 3))])
    await registry.add(3, "pod-b")  # user 3's gateway re-registers
    await fanout.retry_held()
    await fanout.retry_held()
    for _ in range(100):
        if got["pod-a"] and got["pod-b"]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert {"pod-a": [[2]], "pod-b": [[3]]} == got
