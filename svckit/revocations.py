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
(``None``) and the reader asks ``AuthService.CheckSession``, as it does when the store is
unreachable. The auth service notices a missing sentinel within a second and rebuilds.
Concurrent checks are coalesced into one MGET (a storm of connects with new sessions pays
a few round trips).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

from svckit.backends import EmbeddedBackends, open_hot_state
from svckit.coalesce import Coalescer
from svckit.config import Config
from svckit.ports import HotState

log = logging.getLogger("minitg.revocations")

# Not of the form "revoked:<id>", so no session id can collide with it.
COMPLETE_KEY = "list-complete"


def revocations_namespace(redis_prefix: str) -> str:
    return f"{redis_prefix}sessions:"


class RevocationList:
    """Session ids that must not be accepted any more."""

    def __init__(self, state: HotState, ttl: float) -> None:
        self._state, self.ttl = state, ttl
        self._checks: Coalescer[str, bool | None] = Coalescer(
            self._contains_many, max_items=500, max_in_flight=2, name="revocation_check"
        )

    async def add(self, session_id: str) -> None:
        await self._state.set(f"revoked:{session_id}", b"1", self.ttl)

    async def contains(self, session_id: str) -> bool | None:
        """True when revoked; False when not; None when the list is not known to be
        complete (the store forgot it and it is not rebuilt yet): ask the auth service."""
        return await self._checks.submit(session_id)

    async def _contains_many(self, session_ids: list[str]) -> list[bool | None]:
        keys = [COMPLETE_KEY, *(f"revoked:{s}" for s in session_ids)]
        complete, *values = await self._state.get_many(keys)
        unknown = None if complete is None else False
        return [True if value is not None else unknown for value in values]

    async def is_complete(self) -> bool:
        return await self._state.get(COMPLETE_KEY) is not None

    async def rebuild(self, session_ids: Sequence[str]) -> None:
        """Add ``session_ids`` (every session revoked within ``ttl``, from the durable
        record), then mark the list complete: never the mark before the entries."""
        for start in range(0, len(session_ids), 1000):
            chunk = session_ids[start : start + 1000]
            await self._state.set_many([(f"revoked:{s}", b"1") for s in chunk], self.ttl)
        await self._state.set(COMPLETE_KEY, b"1")


RevokedSince = Callable[[int], Awaitable[Sequence[str]]]


class RevocationKeeper:
    """The auth service's side of the list: adds that survive a store outage, and the
    rebuild from the database whenever the sentinel is missing."""

    def __init__(
        self,
        revocations: RevocationList,
        revoked_since: RevokedSince,
        now_ms: Callable[[], int],
        interval: float = 1.0,
    ) -> None:
        self._list, self._revoked_since, self._now_ms = revocations, revoked_since, now_ms
        self._interval = interval
        self._pending: set[str] = set()

    async def add(self, session_id: str) -> None:
        """List a session that just ended; if the store is down, retry every interval (the
        revocation is already durable, so the caller's sign-out must not fail)."""
        try:
            await self._list.add(session_id)
        except Exception as exc:
            self._pending.add(session_id)
            log.warning("could not list revoked session %s (will retry): %r", session_id, exc)

    async def run(self) -> None:
        """Until cancelled: retry failed adds, rebuild the list when the store forgot it.
        A failed round (store or database down) is retried next interval; meanwhile the
        readers ask ``CheckSession`` (store unreachable or sentinel missing)."""
        failing = False
        while True:
            try:
                await self.round()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("could not check or rebuild the revoked-session list: %r", exc)
                failing = True
            await asyncio.sleep(self._interval)

    async def round(self) -> None:
        for session_id in list(self._pending):
            await self._list.add(session_id)
            self._pending.discard(session_id)
        if not await self._list.is_complete():
            since = self._now_ms() - int(self._list.ttl * 1000)
            ids = await self._revoked_since(since)
            await self._list.rebuild(ids)
            log.info("revoked-session list rebuilt from the database: %d sessions", len(ids))


async def open_revocations(
    cfg: Config, embedded: EmbeddedBackends | None, stack: AsyncExitStack
) -> RevocationList:
    """The shared list, opened for a role whose lifetime ``stack`` is."""
    state = await open_hot_state(
        cfg.redis_url, revocations_namespace(cfg.redis_prefix), embedded=embedded
    )
    stack.push_async_callback(state.close)
    return RevocationList(state, cfg.auth.access_ttl_seconds + 60)
