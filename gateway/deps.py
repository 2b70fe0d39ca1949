"""The gateway's dependencies, built by its composition root and read by handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.clients import ServiceClients
from gateway.ratelimit import RateLimiter
from svckit.authn import Authenticator, Principal
from svckit.config import Config
from svckit.errors import Unauthenticated
from svckit.ports import HotState, MessageBus
from svckit.reasons import Reason

SessionHook = Callable[[int, str], Awaitable[None]]


class GatewayAuth:
    """Authenticates HTTP callers at the edge (services verify again, independently)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def from_headers(self, request: web.Request) -> Principal:
        value = request.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        if not value:
            raise Unauthenticated("an access token is required", reason=Reason.TOKEN_MISSING)
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use Authorization: Bearer <token>", reason=Reason.TOKEN_INVALID)
        return await self.authenticator.authenticate(token.strip())

    def forget_session(self, session_id: str) -> None:
        self.authenticator.forget_session(session_id)


@dataclass
class GatewayDeps:
    """Everything the gateway's handlers use."""

    cfg: Config
    clients: ServiceClients
    hot_state: HotState
    bus: MessageBus
    authn: GatewayAuth
    limiter: RateLimiter
    draining: bool = False
    session_hooks: list[SessionHook] = field(default_factory=list)

    async def on_session_revoked(self, user_id: int, session_id: str) -> None:
        """Tell interested parts (the WebSocket hubs of every pod) that a session ended."""
        for hook in self.session_hooks:
            await hook(user_id, session_id)


DEPS = web.AppKey("deps", GatewayDeps)
