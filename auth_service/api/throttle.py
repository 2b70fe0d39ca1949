"""The auth service's rate limits: login, register, refresh and user lookup.

They are enforced here, in the service that owns the credentials, so the REST API, the
WebSocket and a direct gRPC caller all draw from one bucket. Per-IP limits key on the
gRPC peer's address, or, only when the caller proves the internal service secret (the
gateway), on the client address it asserts in ``x-minitg-client-ip``: anyone else could
otherwise pick a fresh IP per guess.

With the store (Redis) down: login, register and lookup fail closed (503 UNAVAILABLE with
a retry hint; an outage must not switch off credential-stuffing or enumeration
protection); refresh fails open (it needs an unguessable refresh token anyway, and
refusing it would sign everyone out for the length of the outage).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from svckit.authn import require_service_caller
from svckit.errors import InvalidArgument
from svckit.ratelimit import CLIENT_IP_HEADER, RateLimiter

MAX_CLIENT_IP_CHARS = 64  # an IPv6 address with a zone fits; the value becomes a key
MAX_EMAIL_KEY_CHARS = 320  # the longest valid address; longer input shares one bucket


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: ``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:/p``."""
    scheme, _, rest = peer.partition(":")
    if scheme in ("ipv4", "ipv6"):
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    return peer or "unknown"


def _asserted_ip(metadata: Iterable[tuple[str, Any]]) -> str | None:
    for key, value in metadata:
        if key == CLIENT_IP_HEADER and isinstance(value, str):
            return value.strip()
    return None


class AuthThrottle:
    """Applies the configured ``MINITG_RATE_*`` limits to the auth service's calls."""

    def __init__(self, limiter: RateLimiter, internal_token: str) -> None:
        self._limiter, self._internal_token = limiter, internal_token
        self._rules = limiter.limits

    def client_ip(self, context: Any) -> str:
        """The caller's IP: the gRPC peer, or the one a proven internal caller asserts."""
        metadata = tuple(context.invocation_metadata() or ())
        asserted = _asserted_ip(metadata)
        if asserted is None:
            return peer_host(context.peer() or "")
        require_service_caller(metadata, self._internal_token)
        if not asserted or len(asserted) > MAX_CLIENT_IP_CHARS:
            raise InvalidArgument(f"{CLIENT_IP_HEADER} must be an address")
        return asserted

    async def login(self, ip: str, email: str) -> None:
        """Per IP (credential stuffing) and per (IP, email) (guessing one password)."""
        await self._limiter.hit("login-ip", ip, self._rules.login_per_ip)
        account = email.strip().lower()[:MAX_EMAIL_KEY_CHARS]
        await self._limiter.hit("login", f"{ip}|{account}", self._rules.login_per_ip_email)

    async def register(self, ip: str) -> None:
        await self._limiter.hit("register-ip", ip, self._rules.register_per_ip)

    async def refresh(self, ip: str) -> None:
        await self._limiter.hit("refresh-ip", ip, self._rules.refresh_per_ip, fail_open=True)

    async def lookup(self, user_id: int) -> None:
        """Exact-match lookup by email is an enumeration oracle: per calling user."""
        await self._limiter.hit("lookup-user", str(user_id), self._rules.lookup_per_user)
