"""The auth service's session-end announcement, through the shared delivery publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from minitg.delivery.v1 import delivery_pb2

from svckit.adapters.memory_bus import MemoryBus
from svckit.adapters.memory_state import MemoryHotState
from svckit.ports import BusUnavailable, Delivery
from svckit.registry import ConnectionRegistry
from svckit.session_end import SessionEndAnnouncer


async def test_every_pod_of_the_user_and_only_those_gets_the_session_end() -> None:
    """Each pod holding the user gets one SessionEnded for the session; other pods nothing."""
    bus, registry = MemoryBus(), ConnectionRegistry(MemoryHotState(), 60, rebuild_seconds=0)
    got: dict[str, list[delivery_pb2.DeliveryItem]] = {"pod-a": [], "pod-b": [], "pod-c": []}

    def inbox(pod: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(delivery: Delivery) -> None:
            got[pod].extend(delivery_pb2.DeliveryBatch.FromString(delivery.body).items)

        return handle

    for pod in got:
        await bus.subscribe(f"q-{pod}", pod, inbox(pod))
    await registry.add(5, "pod-a")
    await registry.add(5, "pod-b")
    await registry.add(6, "pod-c")
    await SessionEndAnnouncer(bus, registry).announce(5, "s-phone")
    for _ in range(100):
        if got["pod-a"] and got["pod-b"]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    ended = [(i.session_ended.session_id, i.session_ended.reason) for i in got["pod-a"]]
    assert [("s-phone", "SESSION_REVOKED")] == ended
    assert 1 == len(got["pod-b"])
    assert [] == got["pod-c"]


class DownBus(MemoryBus):
    """A bus whose broker never confirms."""

    async def publish_many(
        self, routing_key: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        raise BusUnavailable("broker down")


async def test_a_broker_outage_is_not_the_callers_error() -> None:
    """With the broker down the announcement is a logged warning, never an exception."""
    registry = ConnectionRegistry(MemoryHotState(), 60, rebuild_seconds=0)
    await registry.add(5, "pod-a")
    await SessionEndAnnouncer(DownBus(), registry).announce(5, "s-phone")
