"""Caller authentication for every gRPC service: who is calling, from the bearer token.

Each service verifies the access token itself (signature from the JWKS, claims, expiry)
and checks that its session has not been revoked; it never trusts the network or the
gateway. Keys are fetched once and re-fetched when a token names an unknown kid (key
rotation), at most every ``min_jwks_refresh`` seconds. Revocation answers are cached for
``session_ttl`` seconds, so a revoked session stops working within that window everywhere
without a call per request.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from svckit.errors import PermissionDenied, Unauthenticated
from svckit.reasons import Reason
from svckit.tokens import AccessClaims, TokenVerifier, keyring_lookup

AUTHORIZATION = "authorization"

JwksSource = Callable[[], Awaitable[Sequence[Mapping[str, str]]]]
# (session_id, raw bearer token) -> True when the session is revoked.
RevocationCheck = Callable[[str, str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the user, their session (device) and the raw token."""

    user_id: int
    session_id: str
    token: str
    expires_at: int = 0  # the access token's exp (Unix seconds)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata that forwards this caller's identity to another service."""
        return ((AUTHORIZATION, f"Bearer {self.token}"),)


# The caller of the RPC being served, bound by the auth interceptor (svckit.grpc_auth) for
# AUTH_MODE_USER methods. grpc.aio serves each call in its own task, so a binding never
# outlives or leaks into another call.
_caller: ContextVar[Principal] = ContextVar("minitg_caller")


def bind_principal(principal: Principal) -> None:
    """Make ``principal`` the caller of the RPC being served (the auth interceptor's job)."""
    _caller.set(principal)


def current_principal() -> Principal:
    """The authenticated caller of the AUTH_MODE_USER RPC being served.

    Raises LookupError (INTERNAL, a server bug) in a method that does not declare USER.
    """
    return _caller.get()


def bearer_from_metadata(metadata: Any) -> str:
    """The token of an ``authorization: Bearer …`` entry, or raise TOKEN_MISSING."""
    for key, value in metadata or ():
        if key == AUTHORIZATION and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            break
    raise Unauthenticated("an access token is required", reason=Reason.TOKEN_MISSING)


class Authenticator:
    """Turns a bearer token into a Principal, or raises Unauthenticated with the reason."""

    def __init__(
        self,
        *,
        jwks: JwksSource,
        revoked: RevocationCheck,
        issuer: str,
        audience: str,
        session_ttl: float,
        clock: Callable[[], float] = time.time,
        min_jwks_refresh: float = 10.0,
        cache_size: int = 100_000,
    ) -> None:
        self._jwks, self._revoked, self._clock = jwks, revoked, clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._verifier = TokenVerifier(self._keys.get, issuer=issuer, audience=audience)
        self._session_ttl, self._min_refresh = session_ttl, min_jwks_refresh
        self._last_refresh = float("-inf")
        self._refreshing: asyncio.Future[None] | None = None
        self._sessions: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    async def authenticate(self, token: str) -> Principal:
        """Verify ``token`` and its session; return who is calling."""
        now = self._clock()
        claims = await self._claims(token, now)
        if await self._is_revoked(claims, token, now):
            raise Unauthenticated("this session has been signed out", reason=Reason.SESSION_REVOKED)
        return Principal(claims.user_id, claims.session_id, token, claims.expires_at)

    async def verify_only(self, token: str) -> AccessClaims:
        """Check signature and claims but not revocation (for CheckSession itself)."""
        return await self._claims(token, self._clock())

    async def _claims(self, token: str, now: float) -> AccessClaims:
        """Verified claims, remembered per token until it expires: an ES256 check costs
        about 0.1 ms of CPU, and a client sends many requests with one token."""
        cached = self._verified.get(token)
        if cached is not None and now <= cached.expires_at + self._verifier.leeway:
            return cached
        if self._verifier.kid_of(token) not in self._keys:
            await self._refresh_keys(now)
        claims = self._verifier.verify(token, now)
        self._verified[token] = claims
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return claims

    async def from_metadata(self, metadata: Any) -> Principal:
        return await self.authenticate(bearer_from_metadata(metadata))

    def forget_session(self, session_id: str) -> None:
        """Drop a cached answer (the auth service calls this when it revokes locally)."""
        self._sessions.pop(session_id, None)

    async def _refresh_keys(self, now: float) -> None:
        # Concurrent callers share one fetch: otherwise a burst of first calls to a fresh
        # process hits the rate limit below and fails with "unknown key".
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        if now - self._last_refresh < self._min_refresh:
            return
        self._last_refresh = now
        self._refreshing = asyncio.ensure_future(self._fetch_keys())
        try:
            await asyncio.shield(self._refreshing)
        finally:
            self._refreshing = None

    async def _fetch_keys(self) -> None:
        fresh = keyring_lookup(await self._jwks())
        if set(self._keys) - set(fresh):
            self._verified.clear()  # a key was withdrawn: its tokens must be checked again
        self._keys.clear()
        self._keys.update(fresh)

    async def _is_revoked(self, claims: AccessClaims, token: str, now: float) -> bool:
        cached = self._sessions.get(claims.session_id)
        if cached is not None and cached[1] > now:
            self._sessions.move_to_end(claims.session_id)
            return cached[0]
        revoked = await self._revoked(claims.session_id, token)
        if self._session_ttl > 0:
            self._sessions[claims.session_id] = (revoked, now + self._session_ttl)
            self._sessions.move_to_end(claims.session_id)
            while len(self._sessions) > self._cache_size:
                self._sessions.popitem(last=False)
        return revoked


SERVICE_SCHEME = "Service"


def service_metadata(internal_token: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the internal service credential (gateway -> presence, etc.)."""
    return ((AUTHORIZATION, f"{SERVICE_SCHEME} {internal_token}"),)


def require_service_caller(metadata: Any, internal_token: str) -> None:
    """Accept only the shared internal credential; a user's token is PERMISSION_DENIED."""
    for key, value in metadata or ():
        if key != AUTHORIZATION or not isinstance(value, str):
            continue
        scheme, _, secret = value.partition(" ")
        if scheme == SERVICE_SCHEME and hmac.compare_digest(
            secret.strip().encode(), internal_token.encode()
        ):
            return
        if scheme.lower() == "bearer":
            raise PermissionDenied("this RPC is for minitg services, not for users")
        break
    raise Unauthenticated(
        "the internal service credential is missing or wrong", reason=Reason.TOKEN_INVALID
    )
