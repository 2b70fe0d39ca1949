"""The one delivery publisher (svckit.delivery.PodPublisher) on the memory bus and state."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from minitg.chat.v1 import updates_pb2
from minitg.delivery.v1 import delivery_pb2
from minitg.presence.v1 import presence_pb2
from prometheus_client import REGISTRY

from svckit import tracing
from svckit.adapters.memory_bus import MemoryBus
from svckit.adapters.memory_state import MemoryHotState
from svckit.delivery import PodPublisher, split_by_pod
from svckit.ports import BusUnavailable, Delivery
from svckit.registry import ConnectionRegistry
from tests.api.test_tracing import EXPORTER, _install_sdk

Batch = delivery_pb2.DeliveryBatch


class Inbox:
    """Every message published to one pod's routing key."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    async def wait_for(self, count: int) -> list[Batch]:
        for _ in range(250):
            if len(self.deliveries) >= count:
                break
            await asyncio.sleep(0.01)
        return [Batch.FromString(d.body) for d in self.deliveries]


def update_item(
    recipients: Sequence[int], chat_id: int = 1, exclude: str = ""
) -> delivery_pb2.DeliveryItem:
    item = delivery_pb2.DeliveryItem(
        update=updates_pb2.Update(read_outbox=updates_pb2.ReadOutbox(chat_id=chat_id)),
        exclude_session_id=exclude,
    )
    for user_id in recipients:
        item.recipients.add(user_id=user_id, patch=updates_pb2.Update(pts=user_id * 10))
    return item


def presence_item(recipients: Sequence[int]) -> delivery_pb2.DeliveryItem:
    item = delivery_pb2.DeliveryItem(
        recipients=[delivery_pb2.DeliveryRecipient(user_id=u) for u in recipients]
    )
    item.presence_changed.presence.CopyFrom(presence_pb2.UserPresence(user_id=7, online=True))
    return item


def users_of(batch: Batch) -> list[list[int]]:
    return [[r.user_id for r in item.recipients] for item in batch.items]


def skipped(path: str, reason: str) -> float:
    labels = {"path": path, "reason": reason}
    return REGISTRY.get_sample_value("minitg_delivery_recipients_skipped_total", labels) or 0.0


def published(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("minitg_delivery_published_total", labels) or 0.0


async def rig(
    placed: Mapping[int, str], *, in_doubt: bool = False
) -> tuple[MemoryBus, ConnectionRegistry, dict[str, Inbox]]:
    """A memory bus with a bound queue per pod in ``placed`` and a registry placing each
    user there; the registry is in doubt (just born) only when asked."""
    bus = MemoryBus()
    rebuild = 60.0 if in_doubt else 0.0
    registry = ConnectionRegistry(MemoryHotState(), 60, rebuild_seconds=rebuild)
    inboxes: dict[str, Inbox] = {}
    for user_id, pod in placed.items():
        if pod not in inboxes:
            inboxes[pod] = Inbox()
            await bus.subscribe(f"q-{pod}", pod, inboxes[pod])
        await registry.add(user_id, pod)
    return bus, registry, inboxes


def test_split_keeps_only_each_pods_recipients_in_order() -> None:
    """Each pod's message holds only the items and recipients it serves, in order, with
    the shared event, the request id and the excluded session kept."""
    first = update_item([1, 2, 3], chat_id=1, exclude="s")
    second = presence_item([3])
    batches = [Batch(items=[first], request_id="rid"), Batch(items=[second])]
    out = split_by_pod(batches, {"p1": [1, 3], "p2": [2], "p3": [9]}, sent_at_ms=5)
    assert ["p1", "p2"] == sorted(out)
    [p1], [p2] = out["p1"], out["p2"]
    assert [[1, 3], [3]] == users_of(p1)
    assert [20] == [r.patch.pts for r in p2.items[0].recipients]
    assert first.update == p1.items[0].update
    assert second.presence_changed == p1.items[1].presence_changed
    assert ("rid", 5, "s") == (p1.request_id, p1.sent_at_ms, p1.items[0].exclude_session_id)
    assert "" == p1.items[1].exclude_session_id


async def test_each_pod_gets_its_items_and_the_request_id() -> None:
    """One publish reaches every pod once, each with only its recipients, the excluded
    session and the x-request-id header."""
    bus, registry, inboxes = await rig({1: "pod-a", 2: "pod-b"})
    publisher = PodPublisher(bus, registry, "unit-split")
    batch = Batch(items=[update_item([1, 2], exclude="s-1")], request_id="rid-9")
    sent = await publisher.publish([batch])
    assert (2, [None]) == (sent.pods, sent.remainders)
    [a], [b] = await inboxes["pod-a"].wait_for(1), await inboxes["pod-b"].wait_for(1)
    assert ([[1]], [[2]]) == (users_of(a), users_of(b))
    assert "s-1" == a.items[0].exclude_session_id
    assert "rid-9" == inboxes["pod-a"].deliveries[0].headers["x-request-id"]


async def test_a_long_list_goes_out_in_ordered_chunks() -> None:
    """A pod's items beyond ``max_items`` go out as further messages, all in order."""
    bus, registry, inboxes = await rig({1: "pod-a"})
    publisher = PodPublisher(bus, registry, "unit-chunks", max_items=2)
    items = [update_item([1], chat_id=c) for c in range(1, 6)]
    assert 1 == (await publisher.publish([Batch(items=items[:3]), Batch(items=items[3:])])).pods
    messages = await inboxes["pod-a"].wait_for(3)
    assert [2, 2, 1] == [len(m.items) for m in messages]
    chats = [i.update.read_outbox.chat_id for m in messages for i in m.items]
    assert [1, 2, 3, 4, 5] == chats


async def test_recipients_missing_while_in_doubt_come_back_as_the_remainder() -> None:
    """While the registry is in doubt, recipients it cannot place are returned per batch
    (narrowed to them) and counted in_doubt; placed ones are published."""
    bus, registry, inboxes = await rig({1: "pod-a"}, in_doubt=True)
    publisher = PodPublisher(bus, registry, "unit-doubt")
    before = skipped("unit-doubt", "in_doubt")
    batches = [Batch(items=[update_item([1, 2])], request_id="r"), Batch(items=[update_item([1])])]
    sent = await publisher.publish(batches)
    [rest, done] = sent.remainders
    assert (1, None) == (sent.pods, done)
    assert rest is not None
    assert ([[2]], "r") == (users_of(rest), rest.request_id)
    assert [[[1], [1]]] == [users_of(m) for m in await inboxes["pod-a"].wait_for(1)]
    assert 1 == skipped("unit-doubt", "in_doubt") - before


async def test_recipients_missing_from_a_complete_registry_are_offline() -> None:
    """With the registry complete, a recipient with no entry is counted offline and
    nothing is left to retry."""
    bus, registry, _ = await rig({1: "pod-a"})
    publisher = PodPublisher(bus, registry, "unit-offline")
    before = skipped("unit-offline", "offline")
    sent = await publisher.publish([Batch(items=[update_item([1, 2, 3])])])
    assert [None] == sent.remainders
    assert 2 == skipped("unit-offline", "offline") - before


async def test_a_gone_pod_is_skipped_and_the_others_still_get_theirs() -> None:
    """A pod with no queue (Unroutable) is skipped and counted; the other pods are reached."""
    bus, registry, inboxes = await rig({2: "pod-b"})
    await registry.add(1, "pod-gone")
    publisher = PodPublisher(bus, registry, "unit-gone")
    before = published("unroutable")
    sent = await publisher.publish([Batch(items=[presence_item([1, 2])])])
    assert (1, [None]) == (sent.pods, sent.remainders)
    assert [[[2]]] == [users_of(m) for m in await inboxes["pod-b"].wait_for(1)]
    assert 1 == published("unroutable") - before


class DownBus(MemoryBus):
    """A bus whose broker never confirms."""

    async def publish_many(
        self, routing_key: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        raise BusUnavailable("broker down")


async def test_a_broker_failure_is_raised_and_counted() -> None:
    """A failure other than Unroutable is counted failed and raised for the caller."""
    _, registry, _ = await rig({1: "pod-a"})
    publisher = PodPublisher(DownBus(), registry, "unit-down")
    before = published("failed")
    with pytest.raises(BusUnavailable):
        await publisher.publish([Batch(items=[update_item([1])])])
    assert 1 == published("failed") - before


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_the_publish_joins_the_trace_the_batch_carries() -> None:
    """The publish span is a child of the batch's trace context, and its own context goes
    into both the message's trace_context and its AMQP headers."""
    _install_sdk()
    bus, registry, inboxes = await rig({1: "pod-a"})
    with tracing.span("send") as sender:
        carried = tracing.carrier()
    batch = Batch(items=[update_item([1])], trace_context=carried)
    EXPORTER.clear()
    await PodPublisher(bus, registry, "unit-trace").publish([batch])
    [message] = await inboxes["pod-a"].wait_for(1)
    header = inboxes["pod-a"].deliveries[0].headers["traceparent"]
    assert header == message.trace_context["traceparent"]
    assert trace_id(carried["traceparent"]) == trace_id(header)
    assert carried["traceparent"] != header  # the publish span's own id
    [span] = [s for s in EXPORTER.get_finished_spans() if s.name == "delivery publish"]
    assert span.parent is not None
    assert sender.get_span_context().span_id == span.parent.span_id


async def test_without_a_carried_context_the_publish_joins_the_current_span() -> None:
    """A batch carrying no trace context (presence, auth) is published in the current
    span's trace."""
    _install_sdk()
    bus, registry, inboxes = await rig({1: "pod-a"})
    with tracing.span("presence call") as call:
        await PodPublisher(bus, registry, "unit-trace").publish([Batch(items=[presence_item([1])])])
    [message] = await inboxes["pod-a"].wait_for(1)
    expected = format(call.get_span_context().trace_id, "032x")
    assert expected == trace_id(message.trace_context["traceparent"])
    assert expected == trace_id(inboxes["pod-a"].deliveries[0].headers["traceparent"])


async def test_with_tracing_off_a_carried_context_passes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With tracing off the batch's trace context reaches the pod unchanged, in the body
    and the headers, so the gateway still joins the sender's trace."""
    monkeypatch.setattr(tracing._Switch, "on", False)
    bus, registry, inboxes = await rig({1: "pod-a"})
    carried = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    await PodPublisher(bus, registry, "unit-trace").publish(
        [Batch(items=[update_item([1])], trace_context=carried)]
    )
    [message] = await inboxes["pod-a"].wait_for(1)
    assert carried == dict(message.trace_context)
    assert carried["traceparent"] == inboxes["pod-a"].deliveries[0].headers["traceparent"]
