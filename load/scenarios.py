"""The named scenarios (presets) and how each one lays users out into chats.

A scenario is plain data: how many connections, how the users are grouped into chats,
who sends, how fast and for how long. ``layout`` turns it into chats (member lists by
account index) and ``senders`` into the send slots the workers drive. Every figure has a
CLI override (``python -m load direct --connections 2000 --rate 500``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# What each kind does with its connections:
#   idle     connect, hold for ``duration`` s, disconnect (no traffic)
#   traffic  connect, send at ``rate`` msg/s (0 = closed loop, ``window`` in flight per
#            sender) for ``duration`` s, drain, disconnect
#   storm    connect all at once (no ramp), then every connection sends ``per_sender``
#   catchup  connect, ``offline`` clients leave, each gets ``missed`` updates while away,
#            they reconnect with their pts and catch up via GetDifference
KINDS = ("idle", "traffic", "storm", "catchup")


@dataclass(frozen=True)
class Scenario:
    """One load scenario; all counts are totals across the worker processes."""

    name: str
    kind: str
    connections: int
    duration: float = 10.0
    rate: float = 0.0
    group_size: int = 2
    window: int = 1
    per_sender: int = 0  # messages per send slot; 0 = until ``duration`` ends
    offline: int = 0
    missed: int = 0
    connect_concurrency: int = 32  # per worker; 0 = everything at once (storm)
    drain: float = 15.0
    ack_interval: float = 0.2  # delivered acks, as tgclient sends them; 0 = never
    ack_timeout: float = 10.0
    rates: tuple[float, ...] = ()  # a ladder: each rate for ``duration`` s, stop on misses
    slo_p99_ms: float = 100.0  # a ladder step passes with p99 delivery within this

    def with_overrides(self, overrides: dict[str, Any]) -> Scenario:
        """A copy with every non-None override applied (CLI options use the field names)."""
        known = {f.name for f in dataclasses.fields(self)}
        changes = {k: v for k, v in overrides.items() if v is not None and k in known}
        return dataclasses.replace(self, **changes)

    @property
    def messages_per_sender(self) -> int:
        """How many messages each send slot sends in closed loop (0 = until time is up)."""
        return self.missed if self.kind == "catchup" else self.per_sender

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Scenario] = {
    "idle": Scenario("idle", "idle", connections=10_000, duration=60.0),
    "direct": Scenario("direct", "traffic", connections=10_000, duration=60.0, rate=3000.0),
    "group": Scenario(
        "group",
        "traffic",
        connections=10_000,
        duration=60.0,
        rate=430.0,  # 21,070 deliveries/s offered (see load/bench.py GROUP_RATES)
        group_size=50,
        slo_p99_ms=150.0,
    ),
    "storm": Scenario(
        "storm", "storm", connections=10_000, per_sender=1, connect_concurrency=0, drain=30.0
    ),
    "catchup": Scenario(
        "catchup",
        "catchup",
        connections=1_010,
        offline=1_000,
        missed=100,
        group_size=101,
        window=4,
        duration=300.0,
        drain=30.0,
    ),
    # The CI smoke variant: 100 connections, a few seconds, a handful of messages per second.
    "smoke": Scenario("smoke", "traffic", connections=100, duration=3.0, rate=50.0, drain=10.0),
}


@dataclass(frozen=True)
class SendSlot:
    """One device that sends into one chat; ``recipients`` = devices that must get it."""

    device: int
    chat: int
    recipients: int


def layout(scenario: Scenario) -> list[list[int]]:
    """The chats as lists of device (account) indexes; the first member creates the chat.

    traffic/storm: consecutive devices in chats of ``group_size`` (2 = direct chats), a
    remainder smaller than 2 stays chatless. catchup: each chat has one online sender
    followed by ``group_size - 1`` offline members.
    """
    size = max(2, scenario.group_size)
    count = scenario.connections
    if scenario.kind == "idle":
        return []
    chats = [list(range(i, min(i + size, count))) for i in range(0, count, size)]
    return [members for members in chats if len(members) >= 2]


def senders(scenario: Scenario, chats: list[list[int]]) -> list[SendSlot]:
    """Who sends where: every member of every chat, except in catchup (the first only)."""
    slots: list[SendSlot] = []
    for index, members in enumerate(chats):
        speaking = members[:1] if scenario.kind == "catchup" else members
        slots.extend(SendSlot(device, index, len(members) - 1) for device in speaking)
    return slots


def offline_devices(scenario: Scenario, chats: list[list[int]]) -> list[int]:
    """The catchup scenario's clients that go away: every member but each chat's sender."""
    if scenario.kind != "catchup":
        return []
    return [device for members in chats for device in members[1:]][: scenario.offline]


def check(scenario: Scenario) -> None:
    """Refuse settings that cannot work, with the option's name."""
    if scenario.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if scenario.connections < 2:
        raise ValueError("--connections must be at least 2")
    if scenario.kind == "catchup" and scenario.missed < 1:
        raise ValueError("--missed must be at least 1 for catchup")
    if scenario.kind == "traffic" and scenario.rate <= 0 and scenario.window < 1:
        raise ValueError("--window must be at least 1 in closed-loop mode (--rate 0)")
