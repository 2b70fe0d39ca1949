"""One publisher of the delivery envelope (``minitg.delivery.v1``) to the gateway pods.

Three roles send events to the pods holding their recipients' connections: the chat
service's outbox relay (logged updates), the presence service (presence, typing, receipts)
and the auth service (``SessionEnded``). Each hands ``DeliveryBatch`` es whose items name
their recipients to ``PodPublisher.publish``, which does the rest the same way for all:

- **Locate**: one ``ConnectionRegistry.locate`` for every recipient. Recipients with no
  entry are counted (``minitg_delivery_recipients_skipped_total{path, reason}``); while
  the registry is in doubt (just (re)born) they are not dropped but returned to the caller
  as a remainder per batch (the batch narrowed to them) for the caller to retry.
- **Split**: one message per pod holding every item that has a recipient there, with only
  those recipients, in the order given (``split_by_pod``). A message holds at most
  ``ITEMS_PER_MESSAGE`` items: a pod's longer list goes out as several messages, published
  together in order and confirmed together (``publish_many``).
- **Headers**: ``x-request-id`` is the batches' first non-empty request id. Each pod's
  publish runs in a producer span (``delivery publish``) whose parent is the trace context
  the batches carry (the outbox's: the sender's, stored with the row) or, when they carry
  none, the current span (the presence or auth call's); the span's W3C context replaces
  the batches' ``trace_context`` and is copied into the AMQP headers. With tracing off,
  a carried context is passed through unchanged.
- **Outcome** per pod (``minitg_delivery_published_total{outcome}``): ``ok``;
  ``unroutable`` (the pod's queue is gone, the pod with it): skipped; ``failed``: raised at
  once, without trying the remaining pods (the broker is down for them too). Retrying is
  the caller's decision: the outbox keeps its rows, presence and auth drop the events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from minitg.delivery.v1 import delivery_pb2
from opentelemetry.trace import SpanKind

from svckit import tracing
from svckit.logs import REQUEST_ID_HEADER, bind_request_id
from svckit.metrics import DELIVERY_PUBLISHED
from svckit.ports import MessageBus, Unroutable
from svckit.registry import Located, SkipNotes

log = logging.getLogger("minitg.delivery")

# One message per this many items keeps a broker message well under a megabyte (an item
# is an event of at most a few KB plus its recipients' patches).
ITEMS_PER_MESSAGE = 500

Batch = delivery_pb2.DeliveryBatch
Remainders = list[Batch | None]  # per batch given: the part left to retry, or None


class PodDirectory(Protocol):
    """Where users are connected: ``svckit.registry.ConnectionRegistry`` satisfies it."""

    async def locate(self, user_ids: Sequence[int]) -> Located: ...


@dataclass(frozen=True, slots=True)
class Published:
    """What one ``PodPublisher.publish`` did."""

    pods: int  # pods that took their messages
    remainders: Remainders  # per batch, in order: recipients to retry (in doubt) or None


def split_by_pod(
    batches: Sequence[Batch],
    pods: Mapping[str, list[int]],
    sent_at_ms: int,
    max_items: int = ITEMS_PER_MESSAGE,
) -> dict[str, list[Batch]]:
    """Per pod, the messages (``max_items`` items each at most) holding every item that has
    a recipient on it, with only those recipients; pods with none are left out."""
    request_id = next((b.request_id for b in batches if b.request_id), "")
    trace_context: Mapping[str, str] = next(
        (b.trace_context for b in batches if b.trace_context), {}
    )
    out: dict[str, list[Batch]] = {}
    for pod, users in pods.items():
        here = set(users)
        pod_batch = Batch(request_id=request_id, sent_at_ms=sent_at_ms, trace_context=trace_context)
        messages, room = [pod_batch], max_items
        for batch in batches:
            for item in batch.items:
                recipients = [r for r in item.recipients if r.user_id in here]
                if not recipients:
                    continue
                if not room:
                    pod_batch = Batch(
                        request_id=request_id, sent_at_ms=sent_at_ms, trace_context=trace_context
                    )
                    messages.append(pod_batch)
                    room = max_items
                room -= 1
                if len(recipients) == len(item.recipients):  # all of them: one copy, in C
                    pod_batch.items.append(item)
                    continue
                copy = pod_batch.items.add(exclude_session_id=item.exclude_session_id)
                kind = item.WhichOneof("event")
                if kind == "update":  # the send path's event: no getattr
                    copy.update.CopyFrom(item.update)
                elif kind is not None:
                    getattr(copy, kind).CopyFrom(getattr(item, kind))
                copy.recipients.extend(recipients)
        if pod_batch.items:
            out[pod] = messages
    return out


def narrowed(batch: Batch, users: Sequence[int]) -> Batch | None:
    """``batch`` with only the recipients in ``users`` (and only the items that have one);
    None when none is left."""
    kept = split_by_pod([batch], {"": list(users)}, batch.sent_at_ms, max(1, len(batch.items)))
    return kept[""][0] if kept else None


class PodPublisher:
    """Publishes delivery batches to their recipients' pods (see the module docstring)."""

    def __init__(
        self,
        bus: MessageBus,
        pods: PodDirectory,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        max_items: int = ITEMS_PER_MESSAGE,
    ) -> None:
        self._bus, self._pods, self._clock, self._max_items = bus, pods, clock, max_items
        self._skips = SkipNotes(path, log)
        for outcome in ("ok", "unroutable", "failed"):
            DELIVERY_PUBLISHED.labels(outcome)  # export every outcome from the start, at 0

    async def publish(self, batches: Sequence[Batch]) -> Published:
        """Publish every batch's items to their recipients' pods; raise the first failure
        other than ``Unroutable`` (registry or broker down) for the caller to retry."""
        users = sorted({r.user_id for b in batches for item in b.items for r in item.recipients})
        if not users:
            return Published(0, [None] * len(batches))
        located = await self._pods.locate(users)
        self._skips.note(located)
        per_pod = split_by_pod(batches, located.by_pod, int(self._clock() * 1000), self._max_items)
        reached = 0
        for pod, messages in per_pod.items():
            try:
                await self._publish_to(pod, messages)
            except Unroutable:
                DELIVERY_PUBLISHED.labels("unroutable").inc()
                log.info("delivery: pod %s has no queue any more; skipped", pod)
                continue
            except Exception:
                DELIVERY_PUBLISHED.labels("failed").inc()
                raise
            DELIVERY_PUBLISHED.labels("ok").inc()
            reached += 1
        if not located.in_doubt:
            return Published(reached, [None] * len(batches))
        return Published(reached, [narrowed(b, located.missing) for b in batches])

    async def _publish_to(self, pod: str, messages: list[Batch]) -> None:
        """Publish one pod's messages inside a producer span joined to the caller's trace."""
        first = messages[0]
        parent = tracing.parent_from(first.trace_context)
        with tracing.span("delivery publish", SpanKind.PRODUCER, parent, {"minitg.pod": pod}):
            carrier = tracing.carrier() if tracing.enabled() else None
            if carrier:  # the span's context replaces the one carried
                for message in messages:
                    message.trace_context.clear()
                    message.trace_context.update(carrier)
            headers = dict(first.trace_context) if first.trace_context else {}
            if first.request_id:
                headers[REQUEST_ID_HEADER] = first.request_id
            if len(messages) == 1:
                await self._bus.publish(pod, first.SerializeToString(), headers or None)
            else:
                bodies = [m.SerializeToString() for m in messages]
                await self._bus.publish_many(pod, bodies, headers or None)
        if log.isEnabledFor(logging.DEBUG):
            bind_request_id(first.request_id)
            log.debug("delivery: published %d messages to pod %s", len(messages), pod)
