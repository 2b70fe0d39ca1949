"""``minitg serve``: start the roles of a target, wait for a signal, stop them gracefully.

Roles start in dependency order (auth, chat, presence, then the gateway that calls them)
and stop in reverse: the gateway stops taking connections first, then each service drains
its in-flight calls. In ``--target all`` a service bound to port 0 has its real address
written into the config before the next role starts, so tests can run many copies at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import importlib
import logging
import signal
import time
from collections.abc import Mapping

from aiohttp import web

from svckit import metrics, tracing
from svckit.backends import EmbeddedBackends
from svckit.config import ROLES, Config, HostPort
from svckit.lifecycle import Role
from svckit.logs import role_var

log = logging.getLogger("minitg.serve")

# Each role's factory: "module:function" taking (cfg, embedded) and returning a Role.
ROLE_FACTORIES: Mapping[str, str] = {
    "auth": "auth_service.server:build_role",
    "chat": "chat_service.server:build_role",
    "presence": "presence_service.server:build_role",
    "gateway": "gateway.server:build_role",
}


def make_role(name: str, cfg: Config, embedded: EmbeddedBackends) -> Role:
    """Build (not start) the role called ``name``."""
    module_name, _, func_name = ROLE_FACTORIES[name].partition(":")
    factory = getattr(importlib.import_module(module_name), func_name)
    role: Role = factory(cfg, embedded)
    return role


def with_bound_address(cfg: Config, role: Role) -> Config:
    """Point the config's dial target for ``role`` at where it really listens (port 0)."""
    listen: HostPort | None = getattr(cfg, f"{role.name}_listen", None)
    bound = role.describe().get("grpc")
    if listen is None or bound is None or listen.port != 0:
        return cfg
    if role.name == "auth":
        return dataclasses.replace(cfg, auth_target=bound)
    if role.name == "chat":
        return dataclasses.replace(cfg, chat_target=bound)
    return dataclasses.replace(cfg, presence_target=bound)


def with_gc_defaults(cfg: Config, target: str) -> Config:
    """Settle what was left to the target: a gateway process freezes its heap every
    second (gateway/heap.py); the all-in-one process does not by default, since its chat
    and presence make reference cycles with every gRPC call, which frozen would wait
    for a full collection."""
    if cfg.gc_freeze_seconds is not None:
        return cfg
    return dataclasses.replace(cfg, gc_freeze_seconds=1.0 if target == "gateway" else 0.0)


class MetricsEndpoint:
    """``GET /metrics`` on its own address (``MINITG_METRICS_ADDR``), for every target: the
    gateway's public HTTP port never serves it."""

    name = "metrics"

    def __init__(self, addr: HostPort) -> None:
        self._addr = addr
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()

        async def serve_metrics(_: web.Request) -> web.Response:
            body, content_type = metrics.render_latest()
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get("/metrics", serve_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._addr.host, self._addr.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._addr.port

    def drain(self) -> None:
        return None

    async def stop(self, grace: float) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def describe(self) -> Mapping[str, str]:
        return {"metrics": f"{self._addr.host}:{self.port}"}


def roles_for(target: str) -> tuple[str, ...]:
    return ROLES if target == "all" else (target,)


# The cyclic collector, tuned for a server that holds many long-lived objects (10,000
# sockets are about a million tracked objects): at CPython's default a young collection
# every 700 allocations promoted every object living more than a few milliseconds (a send
# waiting for its batch, a frame in flight), and the full collections that followed
# stopped a loaded gateway for 0.4 s every 15-20 s. Young generations 10,000 objects
# deep (MINITG_GC_THRESHOLDS) let short-lived objects die young and keep each young
# collection short: in chat and presence they mostly free grpc.aio's per-call cycles
# (~6 objects per call served), 50,000 of which took 60-100 ms to collect. What the
# process built at startup is frozen out of every collection; a gateway also freezes
# its live heap every second (gateway/heap.py).
def tune_gc(thresholds: tuple[int, int, int]) -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


async def serve(cfg: Config, target: str) -> int:
    """Run ``target`` until SIGTERM or SIGINT; return the process exit code."""
    cfg.check_target(target)
    cfg = with_gc_defaults(cfg, target)
    role_var.set(target)
    metrics.BUILD_INFO.info({"version": "0.1.0", "target": target, "pod_id": cfg.pod_id})
    if cfg.otlp_endpoint:
        tracing.configure(cfg.otlp_endpoint, f"minitg-{target}", cfg.trace_sample_ratio)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    embedded = EmbeddedBackends()
    started: list[Role] = []
    lag_task = asyncio.create_task(metrics.watch_event_loop_lag(), name="loop-lag")
    gc_hook = metrics.watch_gc_pauses()
    try:
        # Start-up races the signals: a SIGTERM while a role is still starting cancels
        # the start and stops whatever had started, instead of being noticed only later.
        starting = asyncio.create_task(start_roles(cfg, target, embedded, started))
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if not starting.done():
            starting.cancel()
            log.info("signalled during start-up; stopping")
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 0
        cfg = starting.result()
        tune_gc(cfg.gc_thresholds)
        where = {f"{r.name}.{k}": v for r in started for k, v in r.describe().items()}
        log.info("minitg ready", extra={"fields": {"target": target, **where}})
        await stop.wait()
        log.info("shutting down", extra={"fields": {"grace_s": cfg.shutdown_grace_seconds}})
    finally:
        lag_task.cancel()
        gc.callbacks.remove(gc_hook)
        await stop_roles(started, cfg.shutdown_grace_seconds)
    return 0


async def start_roles(
    cfg: Config, target: str, embedded: EmbeddedBackends, started: list[Role]
) -> Config:
    """Start each role of ``target`` in order, appending it to ``started`` BEFORE its
    start returns: a role that fails half-way (its port taken after its database opened)
    is stopped with the others, so no pool, thread or server is left keeping the process
    alive after the error. Return the config with the bound addresses filled in."""
    for name in roles_for(target):
        role = make_role(name, cfg, embedded)
        started.append(role)
        await role.start()
        cfg = with_bound_address(cfg, role)
    if cfg.metrics_addr is not None:
        endpoint = MetricsEndpoint(cfg.metrics_addr)
        started.append(endpoint)
        await endpoint.start()
    return cfg


async def stop_roles(roles: list[Role], grace: float) -> None:
    """Drain every role at once, then stop them in reverse start order within ``grace``."""
    deadline = time.monotonic() + grace
    for role in roles:
        role.drain()
    for role in reversed(roles):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            await asyncio.wait_for(role.stop(remaining), remaining + 1.0)
        except Exception:
            log.exception("error while stopping %s", role.name)
