"""The gateway role's composition root: open backends and channels, serve HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack

from aiohttp import web

from gateway.app import create_app
from gateway.clients import ServiceClients
from gateway.deps import GatewayAuth, GatewayDeps
from gateway.ratelimit import RateLimiter
from svckit.auth_client import remote_authenticator
from svckit.backends import EmbeddedBackends, open_bus, open_hot_state
from svckit.config import Config


class GatewayRole:
    """Runs the aiohttp gateway as a role of ``minitg serve``."""

    name = "gateway"

    def __init__(self, cfg: Config, embedded: EmbeddedBackends) -> None:
        self._cfg = cfg
        self._embedded = embedded
        self._stack = AsyncExitStack()
        self._runner: web.AppRunner | None = None
        self._deps: GatewayDeps | None = None
        self.port = 0

    async def start(self) -> None:
        cfg, stack = self._cfg, self._stack
        hot_state = await open_hot_state(
            cfg.redis_url, f"{cfg.redis_prefix}gateway:", embedded=self._embedded
        )
        stack.push_async_callback(hot_state.close)
        bus = await open_bus(
            cfg.broker_url, queue_type=cfg.broker_queue_type, embedded=self._embedded
        )
        stack.push_async_callback(bus.close)
        clients = ServiceClients(cfg)
        stack.push_async_callback(clients.close)
        self._deps = GatewayDeps(
            cfg=cfg,
            clients=clients,
            hot_state=hot_state,
            bus=bus,
            authn=GatewayAuth(remote_authenticator(clients.auth, cfg.auth)),
            limiter=RateLimiter(hot_state, cfg.rates),
        )
        self._runner = web.AppRunner(
            create_app(self._deps), access_log=None, shutdown_timeout=cfg.shutdown_grace_seconds
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.http_addr.host, cfg.http_addr.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else cfg.http_addr.port

    def drain(self) -> None:
        if self._deps is not None:
            self._deps.draining = True

    async def stop(self, grace: float) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stack.aclose()

    def describe(self) -> Mapping[str, str]:
        return {"http": f"http://{self._cfg.http_addr.host}:{self.port}"}


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GatewayRole:
    return GatewayRole(cfg, embedded)
