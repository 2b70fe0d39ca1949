"""This pod's delivery consumer: DeliveryBatch messages from its own queue -> local sockets.

The chat and presence services publish one batch per pod (routing key = pod id), and the
auth service a ``SessionEnded`` item when a session ends (``svckit.session_end``). For an
update, the frame is built once and each recipient's small patch (pts, unread counts) is
appended to it: protobuf merges a repeated embedded field, so ``shared + patch`` decodes as
the recipient's own frame without re-encoding the message body per recipient.
"""

from __future__ import annotations

import asyncio
import logging
import time

from google.protobuf.message import DecodeError
from minitg.delivery.v1 import delivery_pb2
from minitg.gateway.v1 import frames_pb2
from opentelemetry.trace import SpanKind

from gateway.ws_hub import CloseCode, Hub
from svckit import metrics, tracing
from svckit.logs import bind_request_id
from svckit.ports import Delivery

log = logging.getLogger("minitg.gateway.delivery")


def queue_name(pod_id: str) -> str:
    """The durable queue of one gateway pod."""
    return f"minitg.gateway.{pod_id}"


class DeliveryConsumer:
    """Pushes the events of delivery batches to the recipients' local connections."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._closing: set[asyncio.Future[None]] = set()

    async def handle(self, delivery: Delivery) -> None:
        batch = delivery_pb2.DeliveryBatch()
        try:
            batch.ParseFromString(delivery.body)
        except DecodeError:
            metrics.DELIVERY_CONSUMED.labels("malformed").inc()
            log.error("dropping a malformed delivery batch")
            return
        bind_request_id(batch.request_id or delivery.headers.get("x-request-id"))
        parent = tracing.parent_from(batch.trace_context) or tracing.parent_from(delivery.headers)
        with tracing.span(
            "delivery push", SpanKind.CONSUMER, parent, {"minitg.items": len(batch.items)}
        ):
            for item in batch.items:
                self._deliver(item)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("delivered %d items from %s", len(batch.items), delivery.routing_key)
        metrics.DELIVERY_CONSUMED.labels("ok").inc()

    def _deliver(self, item: delivery_pb2.DeliveryItem) -> None:
        kind = item.WhichOneof("event")
        if kind is None:
            return  # a newer event type this gateway does not know
        if kind == "session_ended":
            ended = item.session_ended
            self._closing.add(
                asyncio.ensure_future(
                    self._hub.close_session(
                        ended.session_id, CloseCode.CLOSE_CODE_SESSION_REVOKED, "signed out"
                    )
                )
            )
            return
        shared = frames_pb2.ServerFrame(**{kind: getattr(item, kind)}).SerializeToString()
        excluded, pushed, sent = item.exclude_session_id, 0, 0
        for recipient in item.recipients:
            frame = shared
            if kind == "update":
                patch = frames_pb2.ServerFrame(update=recipient.patch).SerializeToString()
                frame = shared + patch
            for conn in self._hub.of_user(recipient.user_id):
                if excluded and conn.session_id == excluded:
                    continue
                sent += conn.send(frame)
                pushed += 1
        # Counted once per item: its pushes left within microseconds of each other.
        metrics.DELIVERY_PUSHED.inc(pushed)
        if sent:
            metrics.frame_counter("out", kind).inc(sent)
        if pushed and kind == "update" and item.update.date_ms:
            latency = max(0.0, time.time() - item.update.date_ms / 1000)
            metrics.observe_many(metrics.DELIVERY_LATENCY, latency, pushed)
