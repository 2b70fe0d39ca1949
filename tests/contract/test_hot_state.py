"""The ``ports.HotState`` contract, run against Redis and the in-process store alike.

Time moves with ``stores.advance``: the memory adapter's injected clock jumps, Redis
really waits (short TTLs keep that fast).
"""

from __future__ import annotations

import pytest

from svckit.backends import open_hot_state
from svckit.ports import HotState

from .conftest import HotStateFactory

SHORT = 0.2  # a TTL that has surely passed after advance(SHORT + MARGIN)
MARGIN = 0.1


async def test_get_and_set(state: HotState) -> None:
    """A stored value reads back unchanged; an absent key reads as None."""
    assert await state.set("k", b"\x00value") is True

    assert b"\x00value" == await state.get("k")
    assert await state.get("missing") is None


async def test_ttl_expiry(stores: HotStateFactory, state: HotState) -> None:
    """A value with a TTL disappears after it; a value without one stays."""
    await state.set("short", b"1", ttl=SHORT)
    await state.set("forever", b"2")

    await stores.advance(SHORT + MARGIN)

    assert await state.get("short") is None
    assert b"2" == await state.get("forever")


async def test_set_only_if_absent(stores: HotStateFactory, state: HotState) -> None:
    """only_if_absent stores into a free key only; an expired key counts as free."""
    assert await state.set("k", b"first", ttl=SHORT, only_if_absent=True) is True
    assert await state.set("k", b"second", only_if_absent=True) is False
    assert b"first" == await state.get("k")

    await stores.advance(SHORT + MARGIN)

    assert await state.set("k", b"third", only_if_absent=True) is True
    assert b"third" == await state.get("k")


async def test_set_overwrites_and_clears_ttl(stores: HotStateFactory, state: HotState) -> None:
    """A plain set replaces the value and the old TTL with its own."""
    await state.set("k", b"old", ttl=SHORT)
    await state.set("k", b"new")

    await stores.advance(SHORT + MARGIN)

    assert b"new" == await state.get("k")


async def test_delete_counts_existing_keys(state: HotState) -> None:
    """delete removes the keys and returns how many of them existed."""
    await state.set("a", b"1")
    await state.set("b", b"2")

    assert 2 == await state.delete("a", "b", "missing")
    assert 0 == await state.delete("a")
    assert 0 == await state.delete()
    assert [None, None] == await state.get_many(["a", "b"])


async def test_get_many(state: HotState) -> None:
    """get_many returns values in the order asked, None for each absent key."""
    await state.set("a", b"1")
    await state.set("c", b"3")

    assert [b"1", None, b"3", b"1"] == await state.get_many(["a", "b", "c", "a"])
    assert [] == await state.get_many([])


async def test_incr_ttl_only_on_create(stores: HotStateFactory, state: HotState) -> None:
    """incr starts at 0, returns the new value, and only the creating call's TTL applies."""
    assert 1 == await state.incr("n", ttl=SHORT)
    assert 3 == await state.incr("n", 2, ttl=60)
    assert b"3" == await state.get("n")

    await stores.advance(SHORT + MARGIN)

    assert await state.get("n") is None
    assert 5 == await state.incr("n", 5)
    assert -1 == await state.incr("n", -6)


async def test_expiring_set_members(stores: HotStateFactory, state: HotState) -> None:
    """Members stay for their TTL; removed or expired ones are gone; others are untouched."""
    await state.expiring_add("online", "alice", ttl=SHORT)
    await state.expiring_add("online", "bob", ttl=60)
    await state.expiring_add("online", "carol", ttl=60)
    assert {"alice", "bob", "carol"} == await state.expiring_members("online")

    await state.expiring_remove("online", "carol")
    await stores.advance(SHORT + MARGIN)

    assert {"bob"} == await state.expiring_members("online")
    assert set() == await state.expiring_members("nobody")


async def test_expiring_set_refresh(stores: HotStateFactory, state: HotState) -> None:
    """Re-adding a member restarts its TTL, and it then expires with the new one."""
    await state.expiring_add("online", "alice", ttl=SHORT)
    await stores.advance(SHORT / 2)
    await state.expiring_add("online", "alice", ttl=SHORT * 2)

    await stores.advance(SHORT / 2 + MARGIN)
    assert {"alice"} == await state.expiring_members("online")

    await stores.advance(SHORT * 2)
    assert set() == await state.expiring_members("online")


async def test_expiring_add_many(stores: HotStateFactory, state: HotState) -> None:
    """expiring_add_many adds and refreshes many pairs at once, each with the TTL."""
    await state.expiring_add("s1", "old", ttl=SHORT)
    await state.expiring_add_many([("s1", "a"), ("s2", "b"), ("s1", "old")], ttl=60)
    await state.expiring_add_many([], ttl=60)

    await stores.advance(SHORT + MARGIN)

    assert [{"a", "old"}, {"b"}] == await state.expiring_members_many(["s1", "s2"])


async def test_expiring_members_many(stores: HotStateFactory, state: HotState) -> None:
    """expiring_members_many answers for several sets in order, expiry included."""
    await state.expiring_add("s1", "a", ttl=60)
    await state.expiring_add("s1", "gone", ttl=SHORT)
    await state.expiring_add("s2", "b", ttl=60)

    await stores.advance(SHORT + MARGIN)

    assert [{"a"}, set(), {"b"}] == await state.expiring_members_many(["s1", "empty", "s2"])
    assert [] == await state.expiring_members_many([])


async def test_expiring_members_many_answers_more_sets_than_one_call_takes(
    state: HotState,
) -> None:
    """1,201 sets (Redis reads them 500 per script call) come back complete and in order."""
    keys = [f"big{i}" for i in range(1201)]
    await state.expiring_add_many([(k, f"m{i}") for i, k in enumerate(keys) if i % 3], ttl=60)
    expected = [{f"m{i}"} if i % 3 else set() for i in range(1201)]
    assert expected == await state.expiring_members_many(keys)


async def test_rate_limit_refuses_over_limit(stores: HotStateFactory, state: HotState) -> None:
    """limit hits pass (remaining counts down), the next is refused with 0 < retry_after <= window,
    and waiting retry_after lets one more through."""
    window = 1.0
    decisions = [await state.rate_hit("login", 3, window) for _ in range(3)]
    assert [(True, 2), (True, 1), (True, 0)] == [(d.allowed, d.remaining) for d in decisions]
    assert [0.0, 0.0, 0.0] == [d.retry_after for d in decisions]

    refused = await state.rate_hit("login", 3, window)
    assert (False, 0) == (refused.allowed, refused.remaining)
    assert 0 < refused.retry_after <= window

    await stores.advance(refused.retry_after + 0.02)
    assert (await state.rate_hit("login", 3, window)).allowed is True


async def test_rate_limit_refused_hits_not_counted(
    stores: HotStateFactory, state: HotState
) -> None:
    """Refused requests do not push the bucket further into the future."""
    window = 0.4  # limit 2: one request regained every 0.2 s
    assert [True, True] == [(await state.rate_hit("b", 2, window)).allowed for _ in range(2)]
    assert [False] * 5 == [(await state.rate_hit("b", 2, window)).allowed for _ in range(5)]

    await stores.advance(0.25)

    assert (await state.rate_hit("b", 2, window)).allowed is True


async def test_rate_limit_recovers_after_window(stores: HotStateFactory, state: HotState) -> None:
    """After a full window without requests the whole burst is available again."""
    window = 0.3
    for _ in range(4):
        await state.rate_hit("r", 4, window)
    assert (await state.rate_hit("r", 4, window)).allowed is False

    await stores.advance(window + MARGIN)

    decision = await state.rate_hit("r", 4, window)
    assert (True, 3) == (decision.allowed, decision.remaining)


async def test_rate_limit_buckets_are_independent(state: HotState) -> None:
    """Exhausting one bucket leaves another untouched."""
    assert (await state.rate_hit("x", 1, 60)).allowed is True
    assert (await state.rate_hit("x", 1, 60)).allowed is False

    assert (await state.rate_hit("y", 1, 60)).allowed is True


async def test_rate_hit_many_counts_in_order(state: HotState) -> None:
    """One batch behaves as the same hits one after the other, per bucket."""
    hits = [("m", 2, 60.0), ("n", 1, 60.0), ("m", 2, 60.0), ("m", 2, 60.0), ("n", 1, 60.0)]
    decisions = await state.rate_hit_many(hits)
    assert [True, True, True, False, False] == [d.allowed for d in decisions]
    assert [1, 0, 0, 0, 0] == [d.remaining for d in decisions]
    assert 0 < decisions[3].retry_after <= 60
    assert [] == await state.rate_hit_many([])
    assert (await state.rate_hit("m", 2, 60)).allowed is False


async def test_namespaces_isolate(stores: HotStateFactory) -> None:
    """Two stores with different namespaces on one server never see each other's keys."""
    auth, chat = await stores.open(), await stores.open()
    await auth.set("k", b"auth")
    await auth.incr("n")
    await auth.expiring_add("s", "m", ttl=60)
    await auth.rate_hit("r", 1, 60)

    assert await chat.get("k") is None
    assert 1 == await chat.incr("n")
    assert set() == await chat.expiring_members("s")
    assert (await chat.rate_hit("r", 1, 60)).allowed is True
    assert 0 == await chat.delete("k")
    assert b"auth" == await auth.get("k")


@pytest.mark.parametrize("ttl", [0.001, 0.0004])
async def test_tiny_ttl_still_expires(stores: HotStateFactory, state: HotState, ttl: float) -> None:
    """A TTL below a millisecond is rounded up to one, never to "no expiry"."""
    await state.set("k", b"v", ttl=ttl)

    await stores.advance(0.05)

    assert await state.get("k") is None


async def test_ping(state: HotState) -> None:
    """ping is True while the store answers."""
    assert await state.ping() is True


async def test_unreachable_redis_pings_false() -> None:
    """A store on a port nobody listens on answers ping with False, not an exception."""
    store = await open_hot_state("redis://127.0.0.1:1/0", "x:")
    try:
        assert await store.ping() is False
    finally:
        await store.close()


async def test_unknown_scheme_is_rejected() -> None:
    """A hot-state URL of an unsupported scheme is a ValueError naming that scheme."""
    with pytest.raises(ValueError, match="'memcached'"):
        await open_hot_state("memcached://cache", "x:")
