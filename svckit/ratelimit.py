"""Rate limits shared by every pod of a role through the hot-state store's GCRA buckets.

The auth service enforces login, register, refresh and user-lookup limits (so REST,
WebSocket and direct gRPC callers share one bucket); the gateway enforces its own
per-user WebSocket-upgrade limit. Checks are coalesced: the hits that arrive while a
round trip is out leave together as one pipeline, so a storm pays a few round trips.

While the store is down a limit cannot be checked. Each call site decides: fail closed
(``Unavailable`` with a retry hint: an outage must not switch off credential-stuffing or
enumeration protection) or fail open (the request goes on unthrottled, logged).
"""

from __future__ import annotations

import logging
import time

from svckit.coalesce import Coalescer
from svckit.config import RateLimits, RateRule
from svckit.errors import OUTAGE_RETRY_AFTER_SECONDS, RateLimited, Unavailable
from svckit.ports import HotState, RateDecision

# gRPC metadata in which a proven internal caller (the gateway) names its client's IP.
CLIENT_IP_HEADER = "x-minitg-client-ip"
HIT_BATCH = 500  # checks per pipeline
HIT_ROUND_TRIPS = 2  # pipelines in flight at once
OUTAGE_LOG_EVERY_SECONDS = 30.0  # one warning per this while the store stays down

log = logging.getLogger("minitg.ratelimit")


class RateLimiter:
    """Checks named buckets; a refusal raises RATE_LIMITED with the retry time."""

    def __init__(self, state: HotState, limits: RateLimits) -> None:
        self._state, self.limits = state, limits
        self._hits: Coalescer[tuple[str, int, float], RateDecision] = Coalescer(
            self._hit_many, max_items=HIT_BATCH, max_in_flight=HIT_ROUND_TRIPS, name="rate_limit"
        )
        self._outage_logged_at = -OUTAGE_LOG_EVERY_SECONDS

    async def hit(self, bucket: str, key: str, rule: RateRule, *, fail_open: bool = False) -> None:
        """Count one request in ``bucket``/``key``; raise RateLimited when over ``rule``.

        The store down: Unavailable (503 / UNAVAILABLE with a retry hint), or, with
        ``fail_open``, let the request through."""
        try:
            decision = await self._hits.submit((f"rl:{bucket}:{key}", rule.limit, rule.window))
        except Unavailable:
            self._log_outage(bucket, fail_open)
            if fail_open:
                return
            raise Unavailable(
                "rate limits cannot be checked right now; retry shortly",
                retry_after=OUTAGE_RETRY_AFTER_SECONDS,
            ) from None
        if not decision.allowed:
            raise RateLimited("too many requests; retry later", retry_after=decision.retry_after)

    async def close(self) -> None:
        """Wait for the checks in flight."""
        await self._hits.close()

    async def _hit_many(self, hits: list[tuple[str, int, float]]) -> list[RateDecision]:
        return await self._state.rate_hit_many(hits)

    def _log_outage(self, bucket: str, fail_open: bool) -> None:
        now = time.monotonic()
        if now - self._outage_logged_at >= OUTAGE_LOG_EVERY_SECONDS:
            self._outage_logged_at = now
            log.warning(
                "rate-limit store unavailable; %s limit fails %s",
                bucket,
                "open" if fail_open else "closed (503)",
            )
