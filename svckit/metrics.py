"""Prometheus metrics shared by every role (one registry per process).

Metric objects are declared once here, the prometheus-client idiom; they hold no
connections. Names follow Prometheus conventions: ``minitg_`` prefix, base units,
``_total`` for counters, ``_seconds`` for durations.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BUILD_INFO = Info("minitg_build", "Version and roles of this minitg process.")

GRPC_SERVER_HANDLED = Counter(
    "minitg_grpc_server_handled_total",
    "gRPC calls completed by this server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_SECONDS = Histogram(
    "minitg_grpc_server_handling_seconds",
    "Time this server spent on a gRPC call, from receipt to status.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_SERVER_IN_FLIGHT = Gauge(
    "minitg_grpc_server_in_flight", "gRPC calls being handled now.", ["grpc_service"]
)
GRPC_CLIENT_HANDLED = Counter(
    "minitg_grpc_client_handled_total",
    "gRPC calls this process made, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "minitg_grpc_client_handling_seconds",
    "Time a gRPC call made by this process took, as the caller saw it.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "minitg_http_requests_total",
    "HTTP requests answered by the gateway, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "minitg_http_request_duration_seconds",
    "Time the gateway took to answer an HTTP request.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
DEPENDENCY_UP = Gauge(
    "minitg_dependency_up",
    "1 when a dependency (database, broker, hot state, peer service) answered its last check.",
    ["role", "dependency"],
)
WS_CONNECTIONS = Gauge("minitg_ws_connections", "Open client WebSockets on this gateway pod.")
WS_FRAMES = Counter(
    "minitg_ws_frames_total",
    "WebSocket frames by direction (in, out) and payload type.",
    ["direction", "type"],
)
_FRAME_COUNTERS: dict[tuple[str, str], Counter] = {}


def frame_counter(direction: str, kind: str) -> Counter:
    """``WS_FRAMES.labels(direction, kind)``, looked up once per pair: a labels() call costs
    ~3.5 us and every frame in or out of a gateway counts itself (the pairs are bounded
    by the frame types in proto/)."""
    child = _FRAME_COUNTERS.get((direction, kind))
    if child is None:
        child = _FRAME_COUNTERS[(direction, kind)] = WS_FRAMES.labels(direction, kind)
    return child


WS_CLOSES = Counter(
    "minitg_ws_closes_total", "WebSocket connections closed, by close code.", ["code"]
)


def observe_many(histogram: Histogram, amount: float, count: int) -> None:
    """``count`` observations of the same ``amount`` at the cost of one (a group message's
    recipients are pushed within microseconds of each other: ~1.5 us per observe() was
    ~5 % of a core at 20,000 pushes/s). Falls back to ``count`` observe() calls should
    prometheus-client's histogram internals ever change."""
    try:
        bounds, buckets, total = histogram._upper_bounds, histogram._buckets, histogram._sum
    except AttributeError:
        for _ in range(count):
            histogram.observe(amount)
        return
    if count <= 0:
        return
    total.inc(amount * count)
    for bound, bucket in zip(bounds, buckets, strict=True):
        if amount <= bound:
            bucket.inc(count)
            break


DELIVERY_LATENCY = Histogram(
    "minitg_delivery_latency_seconds",
    "From a message's commit (its date) to the push of its update onto a recipient's socket.",
    buckets=LATENCY_BUCKETS,
)
DELIVERY_CONSUMED = Counter(
    "minitg_delivery_batches_consumed_total",
    "Delivery batches this gateway pod took from its queue, by outcome.",
    ["outcome"],
)
DELIVERY_CONSUMERS = Gauge(
    "minitg_delivery_consumers",
    "Consumers this gateway pod runs on its own delivery queue (1 while it can receive).",
)
DELIVERY_PUSHED = Counter(
    "minitg_delivery_pushed_total", "Frames pushed to local sockets from delivery batches."
)
SENDS_SHED = Counter(
    "minitg_ws_sends_shed_total",
    "Sends a gateway refused with RATE_LIMITED because too many were already in flight.",
)
COALESCED_BATCH_ITEMS = Histogram(
    "minitg_coalesced_batch_items",
    "Requests carried by one coalesced call (a gateway pod's batched sends or acks).",
    ["batch"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
PASSWORD_CHECKS = Counter(
    "minitg_auth_password_checks_total",
    "bcrypt password verifications; unknown emails are checked against a decoy, so they count too.",
)
EVENT_LOOP_LAG = Histogram(
    "minitg_event_loop_lag_seconds",
    "How late the event loop ran a timer that should have fired immediately.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


MESSAGES_SENT = Counter(
    "minitg_messages_sent_total", "Messages committed by the chat service (retries not counted)."
)
SEND_COMMIT_SECONDS = Histogram(
    "minitg_send_commit_seconds",
    "Time of one send transaction (a batch of sends), from its start to its commit.",
    buckets=LATENCY_BUCKETS,
)
OUTBOX_LAG = Gauge(
    "minitg_outbox_lag_seconds",
    "Age of the oldest unpublished outbox row (0 when none), as the relay saw it last round.",
)
OUTBOX_PUBLISHED_ROWS = Counter(
    "minitg_outbox_published_rows_total", "Outbox rows the relay published and marked."
)
DELIVERY_PUBLISHED = Counter(
    "minitg_delivery_published_total",
    "Per-pod delivery publishes (chat outbox, presence, auth session ends), by outcome (ok, "
    "unroutable: the pod is gone, failed).",
    ["outcome"],
)
DELIVERY_RECIPIENTS_SKIPPED = Counter(
    "minitg_delivery_recipients_skipped_total",
    "Recipients a fan-out (chat outbox, presence, auth) found no registry entry for, by reason: "
    "offline (the registry is complete: no live connection; normal) or in_doubt (the "
    "registry was just (re)born: left out of this attempt, retried until it is complete).",
    ["path", "reason"],
)
DB_POOL_IN_USE = Gauge(
    "minitg_db_pool_in_use",
    "Database connections checked out of the pool (always 0 on SQLite, which has none).",
    ["role"],
)


def split_method(full_method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


def render_latest() -> tuple[bytes, str]:
    """The text exposition of every metric and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


GC_PAUSE = Histogram(
    "minitg_gc_pause_seconds",
    "Time the cyclic garbage collector stopped this process, by generation.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


def watch_gc_pauses() -> Callable[[str, dict[str, int]], None]:
    """Time every collection into GC_PAUSE (installed in gc.callbacks; returns the hook)."""
    started = [0.0]
    observers = {g: GC_PAUSE.labels(str(g)) for g in range(3)}

    def hook(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        observers[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(hook)
    return hook


async def watch_event_loop_lag(interval: float = 0.1) -> None:
    """Measure scheduling delay forever (run as a background task)."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - started - interval))
