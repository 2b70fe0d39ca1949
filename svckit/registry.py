"""The connection registry: which gateway pods hold a user's live connections.

Written by the gateway (a pod adds itself for a user when the user's first connection on
it opens, refreshes every local user each heartbeat, removes itself when the last one
closes); read by whoever fans out (the chat and presence services) to publish one broker
message per pod. Entries expire after ``ttl`` seconds without a refresh, which is how a
pod that died stops receiving. It lives in the hot-state store under its own namespace,
``<MINITG_REDIS_PREFIX>registry:``, shared on purpose by those roles: it is the one piece
of Redis state that crosses a service boundary, and this class is its whole contract.

Adds are coalesced: the adds that arrive while a round trip is out leave together as one
pipeline, so a pod taking thousands of connects at once pays a few round trips, not one
per connect (an idle pod still sends each add at the next turn of the event loop).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from svckit.coalesce import Coalescer
from svckit.ports import HotState

ADD_BATCH = 500  # registry adds per pipeline
ADD_ROUND_TRIPS = 2  # pipelines of adds in flight at once


def registry_namespace(redis_prefix: str) -> str:
    """The hot-state namespace every role opens the registry under."""
    return f"{redis_prefix}registry:"


def _key(user_id: int) -> str:
    return f"user:{user_id}"


class ConnectionRegistry:
    """User id -> set of pod ids, with per-entry expiry."""

    def __init__(self, state: HotState, ttl: float) -> None:
        self._state, self.ttl = state, ttl
        self._adds: Coalescer[tuple[str, str], None] = Coalescer(
            self._add_many, max_items=ADD_BATCH, max_in_flight=ADD_ROUND_TRIPS, name="registry_add"
        )

    async def add(self, user_id: int, pod_id: str) -> None:
        """Record (or refresh) that ``pod_id`` holds a connection of ``user_id``."""
        await self._adds.submit((_key(user_id), pod_id))

    async def _add_many(self, pairs: list[tuple[str, str]]) -> list[None]:
        await self._state.expiring_add_many(pairs, self.ttl)
        return [None] * len(pairs)

    async def refresh(self, user_ids: Iterable[int], pod_id: str, *, chunk: int = 1000) -> None:
        """Refresh this pod's entry for many users (the heartbeat): one round trip a chunk."""
        ids = list(user_ids)
        for start in range(0, len(ids), chunk):
            pairs = [(_key(uid), pod_id) for uid in ids[start : start + chunk]]
            await self._state.expiring_add_many(pairs, self.ttl)

    async def remove(self, user_id: int, pod_id: str) -> None:
        """Record that ``pod_id`` holds no connection of ``user_id`` any more."""
        await self._state.expiring_remove(_key(user_id), pod_id)

    async def pods_of(self, user_ids: Sequence[int]) -> Mapping[str, list[int]]:
        """Pod id -> the given users with a live connection on that pod."""
        members = await self._state.expiring_members_many([_key(u) for u in user_ids])
        by_pod: dict[str, list[int]] = {}
        for user_id, pods in zip(user_ids, members, strict=True):
            for pod in pods:
                by_pod.setdefault(pod, []).append(user_id)
        return by_pod
