"""The gateway's view of rate limiting: who the HTTP caller is, and the shared limiter.

The limiter itself lives in ``svckit.ratelimit``: the auth service enforces the login,
register, refresh and user-lookup limits; the gateway keeps only the per-user WebSocket
upgrade limit (its own resource) and tells the auth service the client's IP.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from svckit.authn import service_metadata
from svckit.config import Config
from svckit.ratelimit import CLIENT_IP_HEADER, RateLimiter

__all__ = ["RateLimiter", "client_ip", "client_metadata"]


def client_ip(request: web.Request, trust_forwarded_for: bool) -> str:
    """The caller's address: the peer, or the last hop a trusted proxy appended."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops and _is_address(hops[-1]):
            return hops[-1]
    return request.remote or "unknown"


def client_metadata(request: web.Request, cfg: Config) -> tuple[tuple[str, str], ...]:
    """gRPC metadata for the auth service's public calls: the internal credential, which
    lets it believe the client IP that follows (its per-IP limits are the client's, not
    this gateway's)."""
    ip = client_ip(request, cfg.rates.trust_forwarded_for)
    return (*service_metadata(cfg.messaging.internal_token), (CLIENT_IP_HEADER, ip))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
