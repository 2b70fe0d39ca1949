"""The peers queries (ListPeers, BatchListPeers) on PostgreSQL and SQLite."""

from __future__ import annotations

from chat_service.adapters import queries
from chat_service.adapters.membership import MembershipStore

from .conftest import DatabaseFactory
from .test_chat_outbox import actor, migrated


async def test_batched_peers_match_one_user_lookups_and_cap_each_user(
    databases: DatabaseFactory,
) -> None:
    """One query answers every asked user like ``peers`` would, each user capped on their
    own (lowest ids win), users without peers with an empty list."""
    db = await migrated(databases)
    store = MembershipStore(db)
    await store.create_group(actor(1), "g", [1, 2, 3, 4], "")
    await store.create_direct(actor(1), 2)  # 2 is a peer twice over: listed once
    await store.create_direct(actor(5), 6)
    found = await queries.peers_of_users(db, [1, 5, 6, 7], limit=2)
    assert {1: [2, 3], 5: [6], 6: [5], 7: []} == found
    assert [[2, 3], [6], [5], []] == [await queries.peers(db, u, 2) for u in (1, 5, 6, 7)]
    assert {4: [1, 2, 3]} == await queries.peers_of_users(db, [4])
