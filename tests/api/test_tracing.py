"""One send produces one connected trace: WebSocket frame -> gRPC -> outbox -> AMQP -> push.

The gRPC hop is the gateway pod's RelaySends batch, which runs in its first send's trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from svckit import tracing
from tests.api.ws_support import clients, direct_pair
from tests.harness import running_system

EXPORTER = InMemorySpanExporter()


def _install_sdk() -> None:
    """An in-memory SDK for this test process (the global provider can be set only once)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        tracing.install(provider)


def _trace_of(spans: list[ReadableSpan], root_name: str) -> list[ReadableSpan]:
    root = next(s for s in spans if s.name == root_name)
    assert root.context is not None
    return [
        s for s in spans if s.context is not None and s.context.trace_id == root.context.trace_id
    ]


async def test_one_send_is_one_connected_trace(shape: str, tmp_path: Path) -> None:
    """The send's spans share one trace id and each has its parent inside that trace."""
    _install_sdk()
    async with running_system(shape, tmp_path) as system:
        ann, bob, chat = await direct_pair(system)
        async with clients(system, ann, bob) as (a, b):
            await asyncio.sleep(0.3)
            EXPORTER.clear()
            await a.send_text(chat["id"], "traced")
            await b.next_update()
            await asyncio.sleep(0.3)
    spans = _trace_of(list(EXPORTER.get_finished_spans()), "ws send_message")
    names = {s.name for s in spans}
    assert {
        "ws send_message",
        "minitg.chat.v1.ChatInternalService/RelaySends",
        "delivery publish",
        "delivery push",
    } <= names
    ids = {s.context.span_id for s in spans if s.context is not None}
    roots = [s for s in spans if s.parent is None or s.parent.span_id not in ids]
    assert ["ws send_message"] == [s.name for s in roots], "one root, every other span linked"
