"""The gateway's heap keeper: live objects frozen, cycles of closed sockets collected later.

These tests run the real collector of the test process (no stand-in), so every test
leaves it as it found it: unfrozen, thresholds untouched.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.heap import MIN_CLOSES_PER_FULL, HeapKeeper


class _Node:
    """A member of a reference cycle (a closed socket's objects point at each other)."""

    def __init__(self) -> None:
        self.partner: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.partner, b.partner = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def _unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_a_tick_freezes_what_is_alive_and_young_collections_skip_it() -> None:
    keeper = HeapKeeper(1.0, 600.0, open_sockets=lambda: 0, clock=lambda: 0.0)
    garbage = _cycle()
    keeper.tick()
    assert gc.get_freeze_count() > 0
    assert not any(isinstance(o, _Node) for o in gc.get_objects(0))  # not young any more
    gc.collect()
    assert garbage() is not None  # a frozen cycle waits for the keeper's full collection
    assert 0 == keeper.full_collections


@pytest.mark.parametrize(("opened", "enough"), [(0, MIN_CLOSES_PER_FULL), (20_000, 5_000)])
def test_enough_closed_sockets_bring_a_full_collection_of_frozen_cycles(
    opened: int, enough: int
) -> None:
    """A quarter of the open sockets closed (at least MIN_CLOSES_PER_FULL) since the last
    full collection bring the next one."""
    still_open = [opened + enough]

    def close_one() -> None:
        still_open[0] -= 1
        keeper.socket_closed()

    keeper = HeapKeeper(1.0, 600.0, open_sockets=lambda: still_open[0], clock=lambda: 0.0)
    garbage = _cycle()
    keeper.tick()
    for _ in range(enough - 1):
        close_one()
    keeper.tick()
    assert garbage() is not None and 0 == keeper.full_collections
    close_one()
    keeper.tick()
    assert garbage() is None
    assert 1 == keeper.full_collections
    assert gc.get_freeze_count() > 0  # what survived is frozen again


def test_full_collections_also_come_on_time_without_closes() -> None:
    now = [0.0]
    keeper = HeapKeeper(1.0, 600.0, open_sockets=lambda: 0, clock=lambda: now[0])
    garbage = _cycle()
    keeper.tick()
    now[0] = 599.0
    keeper.tick()
    assert garbage() is not None
    now[0] = 600.0
    keeper.tick()
    assert garbage() is None and 1 == keeper.full_collections
