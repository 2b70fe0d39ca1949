"""The list of revoked sessions, shared through the hot-state store.

The auth service adds a session the moment it ends (sign-out, revocation, refresh-token
reuse); every other service reads the list instead of asking the auth service over gRPC
for each session every few seconds, which under load cost more CPU than the messaging
itself. An entry lives as long as the session's last access token can (TTL + leeway):
after that no token of that session verifies anyway. It lives under the namespace
``<MINITG_REDIS_PREFIX>sessions:``, a contract shared on purpose like the connection
registry. If the store forgets (a Redis restart without persistence), revocations of the
last minutes are lost until those tokens expire; readers fall back to
``AuthService.CheckSession`` when the store is unreachable. Concurrent checks are
coalesced into one MGET (a storm of connects with new sessions pays a few round trips).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from svckit.backends import EmbeddedBackends, open_hot_state
from svckit.coalesce import Coalescer
from svckit.config import Config
from svckit.ports import HotState


def revocations_namespace(redis_prefix: str) -> str:
    return f"{redis_prefix}sessions:"


class RevocationList:
    """Session ids that must not be accepted any more."""

    def __init__(self, state: HotState, ttl: float) -> None:
        self._state, self.ttl = state, ttl
        self._checks: Coalescer[str, bool] = Coalescer(
            self._contains_many, max_items=500, max_in_flight=2, name="revocation_check"
        )

    async def add(self, session_id: str) -> None:
        await self._state.set(f"revoked:{session_id}", b"1", self.ttl)

    async def contains(self, session_id: str) -> bool:
        return await self._checks.submit(session_id)

    async def _contains_many(self, session_ids: list[str]) -> list[bool]:
        values = await self._state.get_many([f"revoked:{s}" for s in session_ids])
        return [value is not None for value in values]


async def open_revocations(
    cfg: Config, embedded: EmbeddedBackends | None, stack: AsyncExitStack
) -> RevocationList:
    """The shared list, opened for a role whose lifetime ``stack`` is."""
    state = await open_hot_state(
        cfg.redis_url, revocations_namespace(cfg.redis_prefix), embedded=embedded
    )
    stack.push_async_callback(state.close)
    return RevocationList(state, cfg.auth.access_ttl_seconds + 60)
