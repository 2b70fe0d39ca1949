"""In-process ``ports.MessageBus`` for embedded mode (``memory://``).

It mimics the RabbitMQ adapter's observable behaviour, so code tested against one works
on the other: a direct exchange (a publish goes to every queue bound to its routing key,
and ``Unroutable`` when there is none), durable queues (messages published while nobody
consumes wait for the next subscriber), one consumer task per subscription handling
messages one at a time in order, and "redeliver once, then drop" for a failing handler.

The broker state (queues and bindings) lives in a ``MemoryBroker``; each ``MemoryBus`` is
one process component's handle on it, owning only its own subscriptions. Several
services in one process share a broker (see ``svckit.backends.EmbeddedBackends``) while
each can close its bus without stopping the others' consumers.

Queues never expire here (RabbitMQ's ``x-expires``): in one process the consumer of a
queue lives as long as the process, so there is nothing to collect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence

from svckit.ports import BusError, BusUnavailable, Delivery, Handler, Unroutable

log = logging.getLogger(__name__)


class _MemoryQueue:
    """A FIFO that lets a failed message go back to the head (to keep publish order)."""

    def __init__(self) -> None:
        self._items: deque[Delivery] = deque()
        self._ready = asyncio.Event()

    def put(self, delivery: Delivery, *, front: bool = False) -> None:
        if front:
            self._items.appendleft(delivery)
        else:
            self._items.append(delivery)
        self._ready.set()

    async def get(self) -> Delivery:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class MemoryBroker:
    """Queues and bindings shared by every ``MemoryBus`` of one process."""

    def __init__(self) -> None:
        self.queues: dict[str, _MemoryQueue] = {}
        self.bindings: defaultdict[str, set[str]] = defaultdict(set)

    def declare(self, queue: str, routing_key: str) -> _MemoryQueue:
        """Create ``queue`` if missing and bind it to ``routing_key``."""
        target = self.queues.setdefault(queue, _MemoryQueue())
        self.bindings[routing_key].add(queue)
        return target

    def route(self, routing_key: str, deliveries: Sequence[Delivery]) -> None:
        """Append the deliveries to every queue bound to the key, or raise Unroutable."""
        names = self.bindings.get(routing_key)
        if not names:
            raise Unroutable(f"no queue is bound to routing key {routing_key!r}")
        for name in sorted(names):
            for delivery in deliveries:
                self.queues[name].put(delivery)


class _MemorySubscription:
    """One consumer task on one queue."""

    def __init__(self, queue: _MemoryQueue, name: str, handler: Handler) -> None:
        self._queue = queue
        self._name = name
        self._handler = handler
        self._stopping = False
        self._in_hand = False
        self._task = asyncio.create_task(self._run(), name=f"memory-bus-consumer:{name}")

    async def _run(self) -> None:
        while not self._stopping:
            delivery = await self._queue.get()
            self._in_hand = True
            try:
                await self._handle(delivery)
            finally:
                self._in_hand = False

    async def _handle(self, delivery: Delivery) -> None:
        try:
            await self._handler(delivery)
        except Exception:
            if delivery.redelivered:
                log.exception("handler failed twice; dropping message from %s", self._name)
            else:
                log.exception("handler failed; redelivering message from %s", self._name)
                self._queue.put(dataclasses.replace(delivery, redelivered=True), front=True)

    async def cancel(self) -> None:
        """Stop after the message in hand. Idempotent; from inside the handler it only
        flags, and the worker stops when the handler returns."""
        self._stopping = True
        if self._task is asyncio.current_task():
            return
        if not self._in_hand:
            self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            # Propagate only if it is our own caller being cancelled, not the worker.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


class MemoryBus:
    """A ``ports.MessageBus`` handle on a ``MemoryBroker`` (a private one by default)."""

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self._broker = broker if broker is not None else MemoryBroker()
        self._subscriptions: list[_MemorySubscription] = []
        self._closed = False

    def _require_open(self) -> None:
        if self._closed:
            raise BusUnavailable("memory bus is closed")

    async def publish(
        self, routing_key: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Enqueue one message; raise Unroutable when no queue is bound to the key."""
        await self.publish_many(routing_key, [body], headers)

    async def publish_many(
        self, routing_key: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        """Enqueue several messages in order (all or none: routing is checked first)."""
        self._require_open()
        # Copies, so a caller mutating its headers or buffers later cannot alter a message.
        deliveries = [Delivery(bytes(b), routing_key, dict(headers or {})) for b in bodies]
        self._broker.route(routing_key, deliveries)

    async def subscribe(
        self, queue: str, routing_key: str, handler: Handler
    ) -> _MemorySubscription:
        """Declare and bind ``queue`` and start its consumer task."""
        self._require_open()
        if not queue or not routing_key:
            raise BusError("queue and routing key must be non-empty")
        target = self._broker.declare(queue, routing_key)
        subscription = _MemorySubscription(target, queue, handler)
        self._subscriptions.append(subscription)
        return subscription

    async def ping(self) -> bool:
        """True until the bus is closed."""
        return not self._closed

    async def close(self) -> None:
        """Cancel this handle's subscriptions; the broker and other handles live on."""
        self._closed = True
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.cancel()
