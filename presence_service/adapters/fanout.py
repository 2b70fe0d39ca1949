"""Publishes presence events to the gateway pods of their recipients.

Each call's pushes become one ``DeliveryBatch`` (the envelope the chat service uses too,
one item per push) handed to the delivery publisher (``svckit.delivery.PodPublisher``),
which sends each pod one message with the items that have a recipient there. Users with no
live connection get nothing: these events are never stored or queued. A pod whose queue
is gone (``Unroutable``) is skipped, and a broker outage drops the events (logged): they
are hints that clients re-read from GetPresence and their chats.

While the registry is in doubt (just (re)born after a Redis restart, see
``svckit.registry``), a recipient with no entry may be online on a pod that is still
re-registering: the publisher returns what such recipients should get, and presence and
delivered events are held and retried (only to them) every ``RETRY_SECONDS`` (``run``)
until the registry is complete, for at most ``HOLD_SECONDS``. Typing events are not held:
they expire within seconds and are repeated while the user types.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from minitg.delivery.v1 import delivery_pb2
from minitg.presence.v1 import presence_pb2

from presence_service.domain.events import DeliveredEvent, Event, PresenceEvent, Push
from svckit.delivery import PodPublisher
from svckit.logs import request_id_var
from svckit.ports import BusError, MessageBus
from svckit.registry import REBUILD_SECONDS, ConnectionRegistry

log = logging.getLogger("minitg.presence.fanout")

RETRY_SECONDS = 0.5  # held pushes are tried again this often
HOLD_SECONDS = 2 * REBUILD_SECONDS  # and dropped after this long (the doubt is over by then)
MAX_HELD = 50_000  # held items at most


def _item(event: Event, recipients: Sequence[int]) -> delivery_pb2.DeliveryItem:
    item = delivery_pb2.DeliveryItem(
        recipients=[delivery_pb2.DeliveryRecipient(user_id=u) for u in recipients]
    )
    if isinstance(event, PresenceEvent):
        item.presence_changed.presence.CopyFrom(
            presence_pb2.UserPresence(
                user_id=event.user_id, online=event.online, last_seen_at_ms=event.last_seen_at_ms
            )
        )
    elif isinstance(event, DeliveredEvent):
        item.messages_delivered.CopyFrom(
            presence_pb2.MessagesDelivered(
                chat_id=event.chat_id, max_seq=event.max_seq, by_user_id=event.by_user_id
            )
        )
    else:
        item.typing_changed.CopyFrom(
            presence_pb2.TypingChanged(
                chat_id=event.chat_id, user_id=event.user_id, expires_in_ms=event.expires_in_ms
            )
        )
    return item


class DeliveryFanout:
    """Turns pushes into one broker message per gateway pod."""

    def __init__(
        self,
        registry: ConnectionRegistry,
        bus: MessageBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._publisher = PodPublisher(bus, registry, "presence", clock=clock)
        # (monotonic time first held, what is left to deliver of one call's pushes)
        self._held: list[tuple[float, delivery_pb2.DeliveryBatch]] = []
        self._held_items = 0

    async def run(self) -> None:
        """Retry the held pushes every ``RETRY_SECONDS`` until cancelled."""
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.retry_held()
            except Exception:
                log.exception("retrying %d held presence events failed", self._held_items)

    async def retry_held(self) -> None:
        """Publish the held pushes again (those held too long are dropped)."""
        oldest = time.monotonic() - HOLD_SECONDS
        held = [(t, b) for t, b in self._held if t > oldest]
        self._held, self._held_items = [], 0
        if held:
            await self._publish([b for _, b in held], [t for t, _ in held])

    async def publish(self, pushes: Sequence[Push]) -> int:
        """Deliver ``pushes`` to the pods of their online recipients; return how many pods
        took a message."""
        items = [_item(push.event, push.recipients) for push in pushes if push.recipients]
        if not items:
            return 0
        batch = delivery_pb2.DeliveryBatch(items=items, request_id=request_id_var.get())
        return await self._publish([batch], [time.monotonic()])

    async def _publish(
        self, batches: Sequence[delivery_pb2.DeliveryBatch], since: Sequence[float]
    ) -> int:
        """Publish; hold (with the time each was first held) what the recipients the
        registry in doubt could not place should get."""
        try:
            sent = await self._publisher.publish(batches)
        except BusError:
            log.warning("broker refused %d presence batches; dropped", len(batches))
            return 0
        for rest, first in zip(sent.remainders, since, strict=True):
            if rest is not None:
                self._hold(rest, first)
        return sent.pods

    def _hold(self, rest: delivery_pb2.DeliveryBatch, first: float) -> None:
        kept = [i for i in rest.items if i.WhichOneof("event") != "typing_changed"]
        if kept and self._held_items + len(kept) <= MAX_HELD:
            self._held.append(
                (first, delivery_pb2.DeliveryBatch(items=kept, request_id=rest.request_id))
            )
            self._held_items += len(kept)
