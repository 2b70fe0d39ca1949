"""Publishes presence events to the gateway pods of their recipients.

The connection registry (written by the gateways) says which pods hold each recipient's
live connections; each pod gets one ``DeliveryBatch`` (the envelope the chat service uses
too) with every item that has a recipient on it. Users with no live connection get
nothing: these events are never stored or queued. A pod whose queue is gone
(``Unroutable``) is skipped, and a broker outage drops the events (logged): they are
hints that clients re-read from GetPresence and their chats.

While the registry is in doubt (just (re)born after a Redis restart, see
``svckit.registry``), a recipient with no entry may be online on a pod that is still
re-registering: presence and delivered events for such recipients are held and retried
every ``RETRY_SECONDS`` (``run``) until the registry is complete, for at most
``HOLD_SECONDS``. Typing events are not held: they expire within seconds and are repeated
while the user types.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from minitg.delivery.v1 import delivery_pb2
from minitg.presence.v1 import presence_pb2

from presence_service.domain.events import DeliveredEvent, Event, PresenceEvent, Push, TypingEvent
from svckit.logs import REQUEST_ID_HEADER, request_id_var
from svckit.ports import BusError, MessageBus, Unroutable
from svckit.registry import REBUILD_SECONDS, ConnectionRegistry, SkipNotes

log = logging.getLogger("minitg.presence.fanout")

_ITEMS_PER_MESSAGE = 500  # keeps one broker message well under a megabyte
RETRY_SECONDS = 0.5  # held pushes are tried again this often
HOLD_SECONDS = 2 * REBUILD_SECONDS  # and dropped after this long (the doubt is over by then)
MAX_HELD = 50_000


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
        self._held: list[tuple[float, Push]] = []  # (monotonic time first held, push)
        self._skips = SkipNotes("presence", log)

    async def run(self) -> None:
        """Retry the held pushes every ``RETRY_SECONDS`` until cancelled."""
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.retry_held()
            except Exception:
                log.exception("retrying %d held presence pushes failed", len(self._held))

    async def retry_held(self) -> None:
        """Publish the held pushes again (those held too long are dropped)."""
        oldest = time.monotonic() - HOLD_SECONDS
        held, self._held = [(t, p) for t, p in self._held if t > oldest], []
        if held:
            await self._publish([p for _, p in held], [t for t, _ in held])

    async def publish(self, pushes: Sequence[Push]) -> int:
        """Deliver ``pushes`` to the pods of their online recipients; return how many pods
        took a message."""
        return await self._publish(pushes, [time.monotonic()] * len(pushes))

    async def _publish(self, pushes: Sequence[Push], since: Sequence[float]) -> int:
        """Publish; while the registry is in doubt, hold (with the time each push was
        first held) what its missing recipients should get."""
        wanted = sorted({u for push in pushes for u in push.recipients})
        if not wanted:
            return 0
        located = await self._registry.locate(wanted)
        self._skips.note(located)
        if located.in_doubt:
            self._hold(pushes, set(located.missing), since)
        delivered = 0
        for pod_id, users in sorted(located.by_pod.items()):
            here = set(users)
            items = [
                _item(push.event, [u for u in push.recipients if u in here])
                for push in pushes
                if here.intersection(push.recipients)
            ]
            delivered += await self._send(pod_id, items)
        return delivered

    def _hold(self, pushes: Sequence[Push], missing: set[int], since: Sequence[float]) -> None:
        for push, first in zip(pushes, since, strict=True):
            if isinstance(push.event, TypingEvent):
                continue
            rest = tuple(u for u in push.recipients if u in missing)
            if rest and len(self._held) < MAX_HELD:
                self._held.append((first, Push(push.event, rest)))

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
