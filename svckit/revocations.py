"""The list of revoked sessions, shared through the hot-state store.

The auth service adds a session the moment it ends (sign-out, revocation, refresh-token
reuse); every other service reads the list instead of asking the auth service over gRPC
for each session every few seconds, which under load cost more CPU than the messaging
itself. An entry lives as long as the session's last access token can (TTL + leeway):
after that no token of that session verifies anyway. It lives under the namespace
``<MINITG_REDIS_PREFIX>sessions:``, a contract shared on purpose like the connection
registry.

The list is a cache of the auth database, which is the durable record. A store that
forgets (a Redis restart without persistence, a flush, an eviction) must not bring a
revoked session back, so the list carries a sentinel key, written by the auth service
only after it has (re)built the list from its database. Readers fetch the sentinel in the
same MGET as the ids they check: while it is absent, an id not on the list is "unknown"
(``None``) and the reader asks ``AuthInternalService.CheckSession``, as it does when the store is
unreachable. The auth service notices a missing sentinel within a second and rebuilds
(``auth_service.usecases.revocation_keeper``). A store restarted from an older snapshot keeps the
sentinel but loses the latest entries: a version counter, incremented by every add, then
goes backwards, which the auth service notices the same way.
Concurrent checks are coalesced into one MGET (a storm of connects with new sessions pays
a few round trips).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

from svckit.backends import EmbeddedBackends, open_hot_state
from svckit.coalesce import Coalescer
from svckit.config import Config
from svckit.ports import HotState

# Not of the form "revoked:<id>", so no session id can collide with them.
COMPLETE_KEY = "list-complete"  # present: the list holds every recent revocation
VERSION_KEY = "list-version"  # counts adds; going backwards means the store lost writes
REBUILDING_KEY = "list-rebuilding"  # gone before the mark: the store forgot mid-rebuild


class RebuildInterrupted(Exception):
    """The store forgot the list while it was being rebuilt; rebuild again."""


def revocations_namespace(redis_prefix: str) -> str:
    return f"{redis_prefix}sessions:"


class RevocationList:
    """Session ids that must not be accepted any more."""

    def __init__(self, state: HotState, ttl: float) -> None:
        self._state, self.ttl = state, ttl
        self._checks: Coalescer[str, bool | None] = Coalescer(
            self._contains_many, max_items=500, max_in_flight=2, name="revocation_check"
        )

    async def add(self, session_id: str) -> int:
        """List ``session_id``; return the list's version, which only grows unless the
        store lost writes (restarted from an older snapshot)."""
        await self._state.set(f"revoked:{session_id}", b"1", self.ttl)
        return await self._state.incr(VERSION_KEY)

    async def contains(self, session_id: str) -> bool | None:
        """True when revoked; False when not; None when the list is not known to be
        complete (the store forgot it and it is not rebuilt yet): ask the auth service."""
        return await self._checks.submit(session_id)

    async def _contains_many(self, session_ids: list[str]) -> list[bool | None]:
        keys = [COMPLETE_KEY, *(f"revoked:{s}" for s in session_ids)]
        complete, *values = await self._state.get_many(keys)
        unknown = None if complete is None else False
        return [True if value is not None else unknown for value in values]

    async def status(self) -> tuple[bool, int]:
        """Whether the list is marked complete, and its version (0 when absent)."""
        complete, version = await self._state.get_many([COMPLETE_KEY, VERSION_KEY])
        return complete is not None, int(version or 0)

    async def mark_incomplete(self) -> None:
        """Make readers ask the auth service until the next ``rebuild``."""
        await self._state.delete(COMPLETE_KEY)

    async def rebuild(self, session_ids: Sequence[str], version_floor: int = 0) -> int:
        """Add ``session_ids`` (every session revoked within ``ttl``, from the durable
        record), raise the version above ``version_floor``, then mark the list complete:
        never the mark before the entries. Return the new version."""
        await self._state.set(REBUILDING_KEY, b"1", 60)
        for start in range(0, len(session_ids), 1000):
            chunk = session_ids[start : start + 1000]
            await self._state.set_many([(f"revoked:{s}", b"1") for s in chunk], self.ttl)
        version = await self._state.incr(VERSION_KEY)
        if version <= version_floor:
            version = await self._state.incr(VERSION_KEY, version_floor + 1 - version)
        if await self._state.get(REBUILDING_KEY) is None:
            raise RebuildInterrupted("the hot-state store forgot the list during its rebuild")
        await self._state.set(COMPLETE_KEY, b"1")
        return version


async def open_revocations(
    cfg: Config, embedded: EmbeddedBackends | None, stack: AsyncExitStack
) -> RevocationList:
    """The shared list, opened for a role whose lifetime ``stack`` is."""
    state = await open_hot_state(
        cfg.redis_url, revocations_namespace(cfg.redis_prefix), embedded=embedded
    )
    stack.push_async_callback(state.close)
    return RevocationList(state, cfg.auth.access_ttl_seconds + 60)
