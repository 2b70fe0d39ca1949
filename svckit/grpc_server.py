"""A grpc.aio server hosting one minitg service with health, reflection and interceptors.

Health is driven by the service's dependency checks: a background loop pings each one
every ``health_interval`` seconds and reports SERVING only while all answer. On shutdown
health goes NOT_SERVING first, then the server refuses new calls and gives in-flight
calls ``grace`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from svckit import metrics
from svckit.config import HostPort
from svckit.grpc_auth import CallGuard
from svckit.grpc_interceptors import ClientInterceptor, ServerInterceptor
from svckit.lifecycle import Checks

log = logging.getLogger("minitg.grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Keepalive and size options shared by every server. The server accepts a client's
# keepalive ping every 5 s even on an idle connection (CLIENT_OPTIONS pings every 10 s):
# stricter, it would answer the pings with GOAWAY "too_many_pings" and drop the channel.
SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    # Clients reconnect (and re-resolve DNS) every few minutes, so a scale-up gets traffic.
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
)
# Spread calls over every address a name resolves to (a headless Service in Kubernetes).
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# A channel to a peer that went away retries its connection 0.1 s after the failure,
# growing to at most 1 s (gRPC's default starts at 1 s and grows to 120 s, so callers
# kept failing with UNAVAILABLE for seconds after a restarted peer was ready again).
# Keepalive pings every 10 s, with or without calls, notice a peer that vanished without
# closing its connections (a killed node) within 15 s rather than at the next call.
CLIENT_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.enable_retries", 1),
)


class GrpcServer:
    """Owns one ``grpc.aio.Server`` and its health state."""

    def __init__(
        self,
        *,
        role: str,
        service_name: str,
        listen: HostPort,
        register: Callable[[aio.Server], None],
        checks: Checks,
        health_interval: float,
        advisory: frozenset[str] = frozenset(),
        guard: CallGuard | None = None,
        internal_services: Sequence[str] = (),
    ) -> None:
        self.role = role
        self.service_name = service_name
        # The service's internal RPCs (minitg.*.v1.*InternalService), served beside it with
        # the same health; ``guard`` enforces every method's declared auth mode.
        self._services = (service_name, *internal_services)
        self._guard = guard
        self._listen = listen
        self._register = register
        self._checks = checks
        # Checks reported (metric, log) but not gating SERVING: the role works without them.
        self._advisory = advisory
        self._last: dict[str, bool] = {}
        self._health_interval = health_interval
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server: aio.Server | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._draining = False
        self._drain_task: asyncio.Future[None] | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind, start serving and return the bound port."""
        server = aio.server(interceptors=[ServerInterceptor(self._guard)], options=SERVER_OPTIONS)
        self._register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            self.port = bind(server, self._listen)
            await server.start()
        except BaseException:
            await server.stop(None)  # a server never started still owns C-core threads
            raise
        self._server = server
        await self._refresh_health()
        self._health_task = asyncio.create_task(self._health_loop(), name=f"{self.role}-health")
        return self.port

    def drain(self) -> None:
        """Flip health to NOT_SERVING now so load balancers stop routing here."""
        self._draining = True
        if self._health_task is not None:
            self._health_task.cancel()
        self._drain_task = asyncio.ensure_future(self._health.enter_graceful_shutdown())

    async def stop(self, grace: float) -> None:
        """Refuse new calls; give in-flight calls ``grace`` seconds; then cancel them."""
        if not self._draining:
            self.drain()
        await self._health.enter_graceful_shutdown()
        if self._health_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._health_interval)
            await self._refresh_health()

    async def _refresh_health(self) -> None:
        results = await run_checks(self._checks, timeout=self._health_interval)
        for dependency, ok in results.items():
            metrics.DEPENDENCY_UP.labels(self.role, dependency).set(1 if ok else 0)
            if self._last.get(dependency, True) != ok:
                log_change = log.info if ok else log.warning
                log_change(
                    "%s: %s is %s%s",
                    self.role,
                    dependency,
                    "up" if ok else "down",
                    " (advisory: still serving)" if dependency in self._advisory else "",
                )
        self._last = dict(results)
        gating = [ok for name, ok in results.items() if name not in self._advisory]
        status = SERVING if all(gating) else NOT_SERVING
        if self._draining:
            return
        for name in ("", *self._services):
            await self._health.set(name, status)


def bind(server: aio.Server, listen: HostPort) -> int:
    """Add the insecure port; raise ``OSError`` with a one-line reason when it is taken.

    grpc only says "Failed to bind" (RuntimeError) and logs the reason from C; a probe
    bind first gives the operator the errno ("address already in use").
    """
    if listen.port:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise OSError(exc.errno, f"cannot listen on {listen}: {reason}") from None
    try:
        port = server.add_insecure_port(str(listen))
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {listen}: gRPC could not bind it")
    return port


async def run_checks(checks: Checks, timeout: float) -> Mapping[str, bool]:
    """Run every check concurrently; a check that raises or times out counts as down."""

    async def one(check: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), timeout))
        except Exception:
            return False

    names = list(checks)
    outcomes = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))


def open_channel(target: str, *, timeout: float, intercepted: bool = True) -> aio.Channel:
    """A long-lived channel to a peer service with keepalive and a default deadline
    (``intercepted=False``: the caller adds deadline and metadata itself, see grpc_calls)."""
    interceptors: Any = [ClientInterceptor(timeout, stream_timeout=timeout * 6)]
    return aio.insecure_channel(
        target,
        options=[*CLIENT_OPTIONS, ("grpc.service_config", ROUND_ROBIN)],
        interceptors=interceptors if intercepted else None,
    )


async def check_peer_health(channel: aio.Channel, service: str, timeout: float) -> bool:
    """Ask a peer's standard health service whether ``service`` is SERVING."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError:
        return False
    return bool(reply.status == SERVING)
