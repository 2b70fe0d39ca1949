"""The gateway role's composition root: backends, channels, WebSockets, delivery, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from contextlib import AsyncExitStack

from aiohttp import web

from gateway.app import create_app
from gateway.clients import ServiceClients
from gateway.delivery import DeliveryConsumer, queue_name
from gateway.deps import GatewayAuth, GatewayDeps
from gateway.heap import HeapKeeper
from gateway.listen import listen
from gateway.presence_reporter import PresenceReporter
from gateway.ratelimit import RateLimiter
from gateway.registry_watch import RegistryWatch
from gateway.relays import AckRelay, SendRelay, StateReader
from gateway.ws_dispatch import Dispatcher
from gateway.ws_handler import WsRuntime
from gateway.ws_hub import CloseCode, Connection, Hub
from gateway.ws_maintenance import Maintenance
from svckit import metrics
from svckit.auth_client import remote_authenticator
from svckit.backends import EmbeddedBackends, open_bus, open_hot_state
from svckit.config import Config
from svckit.registry import ConnectionRegistry, registry_namespace
from svckit.revocations import open_revocations


class GatewayRole:
    """Runs the aiohttp gateway as a role of ``minitg serve``."""

    name = "gateway"

    def __init__(self, cfg: Config, embedded: EmbeddedBackends) -> None:
        self._cfg = cfg
        self._embedded = embedded
        self._stack = AsyncExitStack()
        self._runner: web.AppRunner | None = None
        self._deps: GatewayDeps | None = None
        self._hub: Hub | None = None
        self.port = 0

    async def start(self) -> None:
        cfg, stack = self._cfg, self._stack
        deps = await self._open_deps()
        registry_state = await open_hot_state(
            cfg.redis_url, registry_namespace(cfg.redis_prefix), embedded=self._embedded
        )
        stack.push_async_callback(registry_state.close)
        registry = ConnectionRegistry(registry_state, cfg.messaging.registry_ttl_seconds)
        hub = self._hub = Hub(cfg.pod_id, registry)
        reporter = PresenceReporter(deps.clients, cfg.pod_id, cfg.messaging.internal_token)
        freeze_seconds = cfg.gc_freeze_seconds or 0.0  # settled by the runner per target
        heap = HeapKeeper(freeze_seconds, cfg.gc_full_seconds, open_sockets=lambda: len(hub))

        def connection_changed(conn: Connection, up: bool) -> None:
            reporter.connection_changed(conn, up)
            if not up:
                heap.socket_closed()

        hub.on_change = connection_changed
        authenticator = deps.authn.authenticator
        relay = SendRelay(
            deps.clients.chat_internal,
            cfg.messaging.internal_token,
            max_items=cfg.messaging.send_batch_max,
            max_in_flight=cfg.messaging.send_batches_in_flight,
        )
        stack.push_async_callback(relay.close)
        acks = AckRelay(
            deps.clients.presence_internal,
            cfg.messaging.internal_token,
            max_items=1000,
            max_in_flight=1,
        )
        stack.push_async_callback(acks.close)
        states = StateReader(deps.clients.chat_internal, cfg.messaging.internal_token)
        stack.push_async_callback(states.close)
        runtime = WsRuntime(
            hub,
            Dispatcher(
                deps.clients,
                authenticator,
                relay,
                acks,
                cfg.messaging.max_in_flight_per_connection,
                cfg.messaging.max_sends_in_flight,
            ),
            states,
        )

        async def close_session(user_id: int, session_id: str) -> None:
            # This pod's sockets at once; the auth service announces the end to every pod
            # (svckit.session_end), this one included, where the second close is a no-op.
            await hub.close_session(session_id, CloseCode.CLOSE_CODE_SESSION_REVOKED, "signed out")

        deps.session_hooks.append(close_session)
        subscription = await deps.bus.subscribe(
            queue_name(cfg.pod_id), cfg.pod_id, DeliveryConsumer(hub).handle
        )
        stack.push_async_callback(subscription.cancel)
        metrics.DELIVERY_CONSUMERS.set(1)
        stack.callback(metrics.DELIVERY_CONSUMERS.set, 0)
        maintenance = Maintenance(
            hub,
            registry,
            reporter,
            authenticator,
            cfg.messaging.heartbeat_seconds,
            cfg.messaging.session_recheck_seconds,
        )
        watch = RegistryWatch(hub, registry, reporter)
        self._background(reporter.run(), maintenance.run(), watch.run())
        if freeze_seconds > 0:
            self._background(heap.run())
        stack.push_async_callback(reporter.flush)
        await self._serve(create_app(deps, runtime))

    async def _open_deps(self) -> GatewayDeps:
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
        revocations = await open_revocations(cfg, self._embedded, stack)
        self._deps = GatewayDeps(
            cfg=cfg,
            clients=clients,
            hot_state=hot_state,
            bus=bus,
            authn=GatewayAuth(
                remote_authenticator(
                    clients.auth,
                    clients.auth_internal,
                    cfg.auth,
                    cfg.messaging.internal_token,
                    revocations,
                )
            ),
            limiter=RateLimiter(hot_state, cfg.rates),
        )
        return self._deps

    def _background(self, *coros: object) -> None:
        for coro in coros:
            task = asyncio.ensure_future(coro)  # type: ignore[call-overload]

            async def cancel(task: asyncio.Future[None] = task) -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            self._stack.push_async_callback(cancel)

    async def _serve(self, app: web.Application) -> None:
        cfg = self._cfg
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=cfg.shutdown_grace_seconds
        )
        await self._runner.setup()
        # Deep accept queues, several of them: a reconnect storm must queue, not be dropped.
        try:
            self.port = await listen(self._runner, cfg.http_addr.host, cfg.http_addr.port)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise OSError(exc.errno, f"cannot listen on {cfg.http_addr}: {reason}") from None

    def drain(self) -> None:
        if self._deps is not None:
            self._deps.draining = True

    async def stop(self, grace: float) -> None:
        if self._hub is not None:
            # Spread the reconnects of this pod's clients over a few seconds.
            await self._hub.close_all(
                CloseCode.CLOSE_CODE_GOING_AWAY, "server shutting down", random.randint(500, 3000)
            )
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stack.aclose()

    def describe(self) -> Mapping[str, str]:
        return {"http": f"http://{self._cfg.http_addr.host}:{self.port}"}


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GatewayRole:
    return GatewayRole(cfg, embedded)
