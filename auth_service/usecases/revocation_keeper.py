"""Keeps the shared revoked-session list (``svckit.revocations``) true to the database.

The database is the durable record of every revocation; the list in the hot-state store
is a cache of its recent part that other services read. This keeper, run by every auth
pod, makes sure the cache never claims to be complete while it is not:

- an add that fails (store down) does not fail the sign-out: it is retried each round;
- at start, and whenever the sentinel is missing (a restart without persistence, a
  flush), the list is rebuilt from the sessions revoked within the list's TTL;
- when the version went backwards (a restart from an older snapshot: the sentinel
  survived, the latest entries did not), the sentinel is removed first, so readers ask
  the auth service meanwhile, then the list is rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from svckit.revocations import RevocationList

log = logging.getLogger("minitg.auth.revocations")

RevokedSince = Callable[[int], Awaitable[Sequence[str]]]


class RevocationKeeper:
    """The auth service's side of the list: adds, their retries, and rebuilds."""

    def __init__(
        self,
        revocations: RevocationList,
        revoked_since: RevokedSince,
        now_ms: Callable[[], int],
        interval: float = 0.5,
    ) -> None:
        self._list, self._revoked_since, self._now_ms = revocations, revoked_since, now_ms
        self._interval = interval
        self._pending: set[str] = set()
        self._seen = 0  # the highest list version this pod has written or read
        self._rebuilt = False  # rebuild once at start: the store may predate our writes

    async def add(self, session_id: str) -> None:
        """List a session that just ended; if the store is down, retry every interval (the
        revocation is already durable, so the caller's sign-out must not fail)."""
        try:
            self._seen = max(self._seen, await self._list.add(session_id))
        except Exception as exc:
            self._pending.add(session_id)
            log.warning("could not list revoked session %s (will retry): %r", session_id, exc)

    async def run(self) -> None:
        """Until cancelled, one round per interval. A failed round (store or database
        down) is retried next interval; meanwhile readers ask ``CheckSession`` (store
        unreachable or sentinel missing)."""
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
            self._seen = max(self._seen, await self._list.add(session_id))
            self._pending.discard(session_id)
        complete, version = await self._list.status()
        rolled_back = version < self._seen
        if complete and not rolled_back and self._rebuilt:
            self._seen = version
            return
        if complete and rolled_back:
            await self._list.mark_incomplete()
        since = self._now_ms() - int(self._list.ttl * 1000)
        ids = await self._revoked_since(since)
        self._seen = await self._list.rebuild(ids, version_floor=self._seen)
        self._rebuilt = True
        why = "lost writes" if rolled_back else "missing" if not complete else "start"
        log.info("revoked-session list rebuilt from the database (%s): %d sessions", why, len(ids))
