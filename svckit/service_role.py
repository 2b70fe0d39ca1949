"""The generic shape of a gRPC service role: open its backends, migrate, serve.

Each service supplies its composition root (``build_servicer``), which receives the opened
backends and returns the function that registers its servicer on a server. Everything
else — backend lifetimes, health checks built from each adapter's ``ping``, the gRPC
server, graceful stop — is the same for auth, chat and presence, so it lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from grpc import aio

from svckit.backends import EmbeddedBackends, open_bus, open_database, open_hot_state
from svckit.config import Config, HostPort
from svckit.grpc_auth import CallGuard
from svckit.grpc_server import GrpcServer
from svckit.lifecycle import Check
from svckit.migrations import Migrator
from svckit.ports import Database, HotState, MessageBus, StorageUnavailable

log = logging.getLogger("minitg.role")


@dataclass
class Backends:
    """The adapters a service opened, by kind; absent kinds are None."""

    database: Database | None = None
    hot_state: HotState | None = None
    bus: MessageBus | None = None
    # The in-process backends of an embedded system, for a service that opens a second
    # handle itself (the connection registry's namespace); None only in unit tests.
    embedded: EmbeddedBackends | None = None
    extra_checks: dict[str, Check] = field(default_factory=dict)

    def checks(self) -> Mapping[str, Check]:
        found: dict[str, Check] = dict(self.extra_checks)
        if self.database is not None:
            found["database"] = self.database.ping
        if self.hot_state is not None:
            found["hot_state"] = self.hot_state.ping
        if self.bus is not None:
            found["broker"] = self.bus.ping
        return found


Register = Callable[[aio.Server], None]


@dataclass(frozen=True)
class Registration:
    """What a composition root hands the server: how to add its servicers, and the guard
    that enforces each RPC's declared auth mode (svckit.grpc_auth)."""

    register: Register
    guard: CallGuard


BuildServicer = Callable[[Config, Backends, AsyncExitStack], Awaitable[Registration]]


@dataclass(frozen=True)
class ServiceSpec:
    """What distinguishes one gRPC service role from another."""

    role: str
    service_name: str  # full proto name, e.g. "minitg.auth.v1.AuthService"
    # Full names of the internal services served beside it (health, reflection).
    internal_services: tuple[str, ...]
    uses: frozenset[str]  # subset of {"database", "hot_state", "bus"}
    migrations_package: str | None
    build_servicer: BuildServicer
    # Health checks that are reported but do not make the service NOT_SERVING, because it
    # does its job without them (chat commits sends while the broker is down; its outbox
    # publishes them when the broker returns).
    advisory_checks: frozenset[str] = frozenset()


class GrpcServiceRole:
    """Runs one ``ServiceSpec`` as a role of ``minitg serve``."""

    def __init__(
        self, spec: ServiceSpec, cfg: Config, listen: HostPort, embedded: EmbeddedBackends
    ) -> None:
        self.name = spec.role
        self._spec, self._cfg, self._listen, self._embedded = spec, cfg, listen, embedded
        self._stack = AsyncExitStack()
        self._server: GrpcServer | None = None
        self.port = 0

    async def start(self) -> None:
        """Open the backends (an unreachable one is retried in the background: the role
        starts degraded and NOT_SERVING), migrate if configured, serve."""
        backends = await self._open_backends()
        package = self._spec.migrations_package
        if backends.database is not None and package:
            migrator = Migrator(backends.database, package)
            # Readiness follows the schema: code whose tables are missing is not ready.
            backends.extra_checks["schema"] = migrator.is_current
            if self._cfg.auto_migrate:
                await self._migrate_now_or_later(migrator)
        registration = await self._spec.build_servicer(self._cfg, backends, self._stack)
        self._server = GrpcServer(
            role=self.name,
            service_name=self._spec.service_name,
            internal_services=self._spec.internal_services,
            guard=registration.guard,
            listen=self._listen,
            register=registration.register,
            checks=backends.checks(),
            health_interval=self._cfg.health_interval_seconds,
            advisory=self._spec.advisory_checks,
        )
        self.port = await self._server.start()

    async def _migrate_now_or_later(self, migrator: Migrator) -> None:
        """Apply pending migrations; while the database is unreachable, keep retrying in
        the background (the schema check keeps the role NOT_SERVING until done)."""
        try:
            self._log_applied(await migrator.up())
            return
        except StorageUnavailable as exc:
            log.warning("%s: cannot migrate yet (%s); retrying in the background", self.name, exc)

        async def migrate_later() -> None:
            while True:
                await asyncio.sleep(1.0)
                try:
                    self._log_applied(await migrator.up())
                    return
                except StorageUnavailable:
                    continue

        task = asyncio.create_task(migrate_later(), name=f"{self.name}-migrate")

        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self._stack.push_async_callback(cancel)

    def _log_applied(self, applied: list[int]) -> None:
        if applied:
            log.info("%s: applied migrations %s", self.name, applied)

    async def _open_backends(self) -> Backends:
        cfg, uses, stack = self._cfg, self._spec.uses, self._stack
        backends = Backends(embedded=self._embedded)
        if "database" in uses:
            backends.database = await open_database(
                cfg.database_url, self.name, pool_max=cfg.db_pool_max
            )
            stack.push_async_callback(backends.database.close)
        if "hot_state" in uses:
            backends.hot_state = await open_hot_state(
                cfg.redis_url, f"{cfg.redis_prefix}{self.name}:", embedded=self._embedded
            )
            stack.push_async_callback(backends.hot_state.close)
        if "bus" in uses:
            backends.bus = await open_bus(
                cfg.broker_url, queue_type=cfg.broker_queue_type, embedded=self._embedded
            )
            stack.push_async_callback(backends.bus.close)
        return backends

    def drain(self) -> None:
        if self._server is not None:
            self._server.drain()

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        await self._stack.aclose()

    def describe(self) -> Mapping[str, str]:
        return {"grpc": f"{self._listen.host}:{self.port}"}
