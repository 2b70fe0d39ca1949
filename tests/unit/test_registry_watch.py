"""A gateway pod puts all its users back in the connection registry when the registry
forgot them (Redis restarted or was flushed), without waiting for the heartbeat sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from gateway.registry_watch import RegistryWatch
from gateway.ws_hub import Hub
from svckit.adapters.memory_state import MemoryHotState
from svckit.registry import EPOCH_KEY, ConnectionRegistry


@dataclass(eq=False)
class FakeConnection:
    user_id: int
    closing: bool = False

    @property
    def session_id(self) -> str:
        return f"s{self.user_id}"


@dataclass
class Beats:
    sessions: list[str] = field(default_factory=list)

    def heartbeat(self, conns: list[Any]) -> None:
        self.sessions.extend(c.session_id for c in conns)


async def test_a_forgotten_registry_is_refilled_at_the_next_check() -> None:
    """After the registry lost every key, the next check re-registers each user of the pod
    and heartbeats each connection to presence; an unchanged registry costs nothing."""
    state = MemoryHotState()
    registry = ConnectionRegistry(state, ttl=60)
    hub, beats = Hub("pod-1", registry), Beats()
    for user in (1, 2, 3):
        await hub.attach(cast(Any, FakeConnection(user)))
    watch = RegistryWatch(hub, registry, cast(Any, beats))
    assert (True, False) == (await watch.check(), await watch.check())
    assert [] == beats.sessions, "the first check is the pod's own start"
    await state.delete(EPOCH_KEY, *(f"user:{u}" for u in (1, 2, 3)))  # Redis restarted
    assert {} == dict(await registry.pods_of([1, 2, 3]))
    assert True is await watch.check()
    assert {"pod-1": [1, 2, 3]} == {
        k: sorted(v) for k, v in (await registry.pods_of([1, 2, 3])).items()
    }
    assert ["s1", "s2", "s3"] == sorted(beats.sessions)
