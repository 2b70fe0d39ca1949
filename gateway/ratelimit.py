"""Rate limits shared by every gateway pod (the hot-state store's GCRA buckets)."""

from __future__ import annotations

from aiohttp import web

from svckit.config import RateLimits, RateRule
from svckit.errors import RateLimited
from svckit.ports import HotState


class RateLimiter:
    """Checks named buckets; a refusal raises RATE_LIMITED with the retry time."""

    def __init__(self, state: HotState, limits: RateLimits) -> None:
        self._state, self.limits = state, limits

    async def hit(self, bucket: str, key: str, rule: RateRule) -> None:
        decision = await self._state.rate_hit(f"rl:{bucket}:{key}", rule.limit, rule.window)
        if not decision.allowed:
            raise RateLimited("too many requests; retry later", retry_after=decision.retry_after)

    def client_ip(self, request: web.Request) -> str:
        """The caller's address: the peer, or the last hop a trusted proxy appended."""
        if self.limits.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            if hops:
                return hops[-1]
        return request.remote or "unknown"
