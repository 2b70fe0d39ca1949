"""The gateway's heartbeat sweep visits its sockets in slices spread over the interval:
every socket once per interval, never all of them at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

from gateway.ws_hub import Hub
from gateway.ws_maintenance import Maintenance
from svckit.backends import EmbeddedBackends
from svckit.registry import ConnectionRegistry


@dataclass
class FakeSocket:
    pings: list[float] = field(default_factory=list)
    closed: bool = False

    async def ping(self) -> None:
        self.pings.append(time.monotonic())


@dataclass(eq=False)
class FakeConnection:
    """What the sweep reads of a connection (a real one needs a real aiohttp socket)."""

    user_id: int
    ws: FakeSocket = field(default_factory=FakeSocket)
    closing: bool = False
    token_exp: float = 0.0
    last_seen: float = field(default_factory=time.monotonic)
    last_pong: float = field(default_factory=time.monotonic)
    last_checked: float = field(default_factory=time.monotonic)

    @property
    def session_id(self) -> str:
        return f"s{self.user_id}"

    async def close(self, code: int, message: str = "") -> None:
        self.closing = True


class FakeHub:
    pod_id = "pod-1"

    def __init__(self, conns: list[FakeConnection]) -> None:
        self.conns = conns

    def connections(self) -> list[FakeConnection]:
        return list(self.conns)


class Beats:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.beaten: list[str] = []

    def heartbeat(self, conns: list[Any]) -> None:
        self.batches.append(len(conns))
        self.beaten.extend(c.session_id for c in conns)


async def until(condition: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the sweep did not get there in time"
        await asyncio.sleep(0.01)


async def test_the_sweep_visits_every_socket_once_per_interval_in_slices() -> None:
    """10 sockets, a 2 s interval: four slices of at most 3 sockets, each socket once."""
    conns = [FakeConnection(user_id=i) for i in range(1, 11)]
    beats = Beats()
    registry = ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), ttl=60)
    sweep = Maintenance(
        cast(Any, FakeHub(conns)), registry, cast(Any, beats), cast(Any, None),
        interval=2.0, recheck=3600,
    )  # fmt: skip
    task = asyncio.create_task(sweep.run())
    try:
        await until(lambda: beats.batches)
        assert [3] == beats.batches, "the first slice only"
        assert 3 == sum(1 for c in conns if c.ws.pings)
        await until(lambda: all(c.ws.pings for c in conns))
        assert [3, 3, 3, 1] == beats.batches
        assert all(len(c.ws.pings) == 1 for c in conns)
        pods = await registry.pods_of([c.user_id for c in conns])
        assert {"pod-1": [c.user_id for c in conns]} == {k: sorted(v) for k, v in pods.items()}
    finally:
        task.cancel()


async def test_a_pod_with_fewer_sockets_than_slices_visits_each_once_per_interval() -> None:
    """One socket, a 1 s interval in two slices: the socket is visited in the first slice
    of each interval only, not in every slice."""
    conn, beats = FakeConnection(user_id=1), Beats()
    registry = ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), ttl=60)
    sweep = Maintenance(
        cast(Any, FakeHub([conn])), registry, cast(Any, beats), cast(Any, None),
        interval=1.0, recheck=3600,
    )  # fmt: skip
    task = asyncio.create_task(sweep.run())
    try:
        await until(lambda: len(beats.batches) >= 4)
        assert [1, 0, 1, 0] == beats.batches[:4]
        assert 2 == len(conn.ws.pings)
    finally:
        task.cancel()


async def test_a_socket_its_client_closed_is_not_reported_alive_by_a_later_sweep() -> None:
    """A sweep slice taken before a client closed its socket neither heartbeats that
    connection to presence (which kept the user online until the TTL) nor re-adds its
    registry entry."""
    registry = ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), ttl=60)
    hub, beats = Hub("pod-1", registry), Beats()
    gone, stays = FakeConnection(user_id=1), FakeConnection(user_id=2)
    for conn in (gone, stays):
        await hub.attach(cast(Any, conn))
    sweep = Maintenance(
        hub, registry, cast(Any, beats), cast(Any, None), interval=30.0, recheck=3600
    )
    slice_taken = hub.connections()  # the sweep's round starts with both sockets
    gone.ws.closed = True
    await hub.detach(cast(Any, gone))  # the client closed it: ws_handler's finally
    await sweep.tick(slice_taken)
    assert ["s2"] == beats.beaten
    assert {"pod-1": [2]} == dict(await registry.pods_of([1, 2]))
