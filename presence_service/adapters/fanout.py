"""Publishes presence events to the gateway pods of their recipients.

The connection registry (written by the gateways) says which pods hold each recipient's
live connections; each pod gets one ``DeliveryBatch`` (the envelope the chat service uses
too) with every item that has a recipient on it. Users with no live connection get
nothing: these events are never stored or queued. A pod whose queue is gone
(``Unroutable``) is skipped, and a broker outage drops the events (logged): they are
hints that clients re-read from GetPresence and their chats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from minitg.chat.v1 import delivery_pb2
from minitg.presence.v1 import presence_pb2

from presence_service.domain.events import DeliveredEvent, Event, PresenceEvent, Push
from svckit.logs import REQUEST_ID_HEADER, request_id_var
from svckit.ports import BusError, MessageBus, Unroutable
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.presence.fanout")

_ITEMS_PER_MESSAGE = 500  # keeps one broker message well under a megabyte


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
        self._registry, self._bus, self._clock = registry, bus, clock

    async def publish(self, pushes: Sequence[Push]) -> int:
        """Deliver ``pushes`` to the pods of their online recipients; return how many pods
        took a message."""
        wanted = sorted({u for push in pushes for u in push.recipients})
        if not wanted:
            return 0
        pods = await self._registry.pods_of(wanted)
        delivered = 0
        for pod_id, users in sorted(pods.items()):
            here = set(users)
            items = [
                _item(push.event, [u for u in push.recipients if u in here])
                for push in pushes
                if here.intersection(push.recipients)
            ]
            delivered += await self._send(pod_id, items)
        return delivered

    async def _send(self, pod_id: str, items: list[delivery_pb2.DeliveryItem]) -> int:
        rid = request_id_var.get()
        bodies = [
            delivery_pb2.DeliveryBatch(
                items=items[start : start + _ITEMS_PER_MESSAGE],
                request_id=rid,
                sent_at_ms=int(self._clock() * 1000),
            ).SerializeToString()
            for start in range(0, len(items), _ITEMS_PER_MESSAGE)
        ]
        headers = {REQUEST_ID_HEADER: rid} if rid else {}
        try:
            await self._bus.publish_many(pod_id, bodies, headers=headers)
        except Unroutable:
            log.debug("pod %s has no delivery queue; skipped", pod_id)
            return 0
        except BusError:
            log.warning("broker refused presence events for pod %s; dropped", pod_id)
            return 0
        return 1
