"""Rate limits shared by every gateway pod (the hot-state store's GCRA buckets).

Checks are coalesced: the hits that arrive while a round trip is out leave together as
one pipeline, so a storm of WebSocket upgrades pays a few round trips, not one each.
"""

from __future__ import annotations

from aiohttp import web

from svckit.coalesce import Coalescer
from svckit.config import RateLimits, RateRule
from svckit.errors import RateLimited
from svckit.ports import HotState, RateDecision

HIT_BATCH = 500  # checks per pipeline
HIT_ROUND_TRIPS = 2  # pipelines in flight at once


class RateLimiter:
    """Checks named buckets; a refusal raises RATE_LIMITED with the retry time."""

    def __init__(self, state: HotState, limits: RateLimits) -> None:
        self._state, self.limits = state, limits
        self._hits: Coalescer[tuple[str, int, float], RateDecision] = Coalescer(
            self._hit_many, max_items=HIT_BATCH, max_in_flight=HIT_ROUND_TRIPS, name="rate_limit"
        )

    async def hit(self, bucket: str, key: str, rule: RateRule) -> None:
        decision = await self._hits.submit((f"rl:{bucket}:{key}", rule.limit, rule.window))
        if not decision.allowed:
            raise RateLimited("too many requests; retry later", retry_after=decision.retry_after)

    async def _hit_many(self, hits: list[tuple[str, int, float]]) -> list[RateDecision]:
        return await self._state.rate_hit_many(hits)

    def client_ip(self, request: web.Request) -> str:
        """The caller's address: the peer, or the last hop a trusted proxy appended."""
        if self.limits.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            if hops:
                return hops[-1]
        return request.remote or "unknown"
