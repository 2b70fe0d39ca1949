"""RabbitMQ ``ports.MessageBus`` on aio-pika, for the distributed deployment.

Publishing: one robust channel with publisher confirms and ``on_return_raises=True`` on a
durable direct exchange. A mandatory message that no queue is bound to comes back as
``Basic.Return`` before the confirm, which aiormq turns into ``PublishError``: that is
``Unroutable`` (for delivery: the target gateway pod is gone). While the robust connection
reconnects, aio-pika does not replay publishes; it raises, or blocks in
``connection.ready()``, so each attempt is bounded by a timeout and retried with
exponential backoff (tenacity) until the retry budget runs out: then ``BusUnavailable``.
A lost confirm is retried too, which may duplicate a message: delivery is at least once.

Starting while RabbitMQ is down: :meth:`AmqpBus.open` returns at once with a bus that
connects in the background (aio-pika's ``connect_robust`` only reconnects a connection
that was once up; its first failure raises). Until then ``ping`` is False, a publish
waits within its retry budget and then raises ``BusUnavailable``, and ``subscribe``
returns a subscription that starts consuming once the connection is up.

Consuming: one robust channel per subscription (so its prefetch, and its closing, touch
only that queue). aiormq runs every delivery callback in its own task, which would call
the handler concurrently and out of order; the callback therefore only appends to an
inbox that a single worker task drains, one message at a time, in delivery order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelClosed, PublishError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential
from yarl import URL

from svckit.ports import BusError, BusUnavailable, Delivery, Handler, Unroutable

log = logging.getLogger(__name__)

EXCHANGE = "minitg.delivery"
QueueType = Literal["classic", "quorum"]
_TRANSIENT: tuple[type[BaseException], ...] = (TimeoutError, *CONNECTION_EXCEPTIONS)


def _is_transient(exc: BaseException) -> bool:
    """A connection or channel failure (worth retrying), not a routing verdict."""
    return isinstance(exc, _TRANSIENT) and not isinstance(exc, PublishError)


def _str_headers(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """AMQP header values may come back as bytes (longstr) or numbers; the port is str."""
    result: dict[str, str] = {}
    for key, value in (raw or {}).items():
        result[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return result


def _redacted(url: str) -> str:
    """The broker URL without its password, fit for an error message or a log line."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


class _AmqpSubscription:
    """One queue consumer: a robust channel, a consumer tag and the worker task."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, handler: Handler) -> None:
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._consumer_tag: str | None = None
        self._stopping = False
        self._in_hand = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin consuming; the broker pushes up to the channel's prefetch ahead."""
        self._task = asyncio.create_task(self._run(), name=f"amqp-consumer:{self._queue.name}")
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        try:
            while not self._stopping:
                message = await self._inbox.get()
                self._in_hand = True
                try:
                    await self._handle(message)
                finally:
                    self._in_hand = False
        finally:
            # Closing the channel hands every prefetched, unacknowledged message back
            # to the queue, for the next subscriber.
            with contextlib.suppress(*_TRANSIENT):
                await self._channel.close()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            message.channel  # noqa: B018  # raises when the channel has been replaced
        except aio_pika.exceptions.ChannelInvalidStateError:
            return  # received before a reconnect: the broker will redeliver it
        delivery = Delivery(
            body=message.body,
            routing_key=message.routing_key or "",
            headers=_str_headers(message.headers),
            redelivered=bool(message.redelivered),
        )
        try:
            await self._handler(delivery)
        except Exception:
            log.exception(
                "handler failed on queue %s (redelivered=%s); %s",
                self._queue.name,
                delivery.redelivered,
                "dropping" if delivery.redelivered else "requeueing",
            )
            await self._settle(message.nack(requeue=not message.redelivered))
        else:
            await self._settle(message.ack())

    async def _settle(self, settlement: Any) -> None:
        """Ack or nack; if the channel broke meanwhile the broker redelivers anyway."""
        try:
            await settlement
        except _TRANSIENT as exc:
            log.warning("could not settle a message on %s: %r", self._queue.name, exc)

    async def cancel(self) -> None:
        """Stop after the message in hand; unacknowledged messages return to the queue.
        Idempotent; from inside the handler it only flags, the worker stops on return."""
        if self._task is None:
            return
        if not self._stopping:
            self._stopping = True
            if self._consumer_tag is not None:
                with contextlib.suppress(*_TRANSIENT):
                    await self._queue.cancel(self._consumer_tag)
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


class _PendingSubscription:
    """A subscription asked for before the first connection: it is declared and starts
    consuming when the bus connects, unless cancelled first."""

    def __init__(self, queue: str, routing_key: str, handler: Handler) -> None:
        self.queue, self.routing_key, self.handler = queue, routing_key, handler
        self.inner: _AmqpSubscription | None = None
        self.cancelled = False

    async def cancel(self) -> None:
        self.cancelled = True
        if self.inner is not None:
            await self.inner.cancel()


class AmqpBus:
    """A ``ports.MessageBus`` on RabbitMQ (see the module docstring)."""

    def __init__(
        self,
        connection: AbstractRobustConnection | None,
        exchange: AbstractExchange | None,
        *,
        queue_type: QueueType = "classic",
        queue_expires_ms: int = 600_000,
        prefetch: int = 256,
        publish_retry_seconds: float = 10.0,
    ) -> None:
        """Wrap an open connection; use :meth:`connect` rather than calling this directly."""
        self._connection = connection
        self._exchange = exchange
        self._queue_arguments: dict[str, Any] = {
            "x-expires": queue_expires_ms,
            "x-queue-type": queue_type,
        }
        self._prefetch = prefetch
        self._retry_seconds = publish_retry_seconds
        self._subscriptions: list[_AmqpSubscription] = []
        self._pending: list[_PendingSubscription] = []
        self._connecting: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        queue_type: QueueType = "classic",
        queue_expires_ms: int = 600_000,
        prefetch: int = 256,
        publish_retry_seconds: float = 10.0,
        reconnect_interval: float = 1.0,
    ) -> AmqpBus:
        """Connect (robustly: aio-pika reconnects and restores channels, queues, bindings
        and consumers in the background) and declare the delivery exchange."""
        if queue_type not in ("classic", "quorum"):
            raise ValueError(f"queue_type must be 'classic' or 'quorum', not {queue_type!r}")
        try:
            connection = await aio_pika.connect_robust(
                url, timeout=10, reconnect_interval=reconnect_interval
            )
        except _TRANSIENT as exc:
            raise BusUnavailable(f"RabbitMQ at {_redacted(url)} unreachable: {exc!r}") from exc
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.declare_exchange(
                EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
            )
        except BaseException:
            await connection.close()
            raise
        return cls(
            connection,
            exchange,
            queue_type=queue_type,
            queue_expires_ms=queue_expires_ms,
            prefetch=prefetch,
            publish_retry_seconds=publish_retry_seconds,
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        queue_type: QueueType = "classic",
        queue_expires_ms: int = 600_000,
        retry_seconds: float = 2.0,
    ) -> AmqpBus:
        """Connect like :meth:`connect`, but when RabbitMQ is unreachable return a bus that
        keeps trying in the background every ``retry_seconds`` (a degraded start)."""
        try:
            return await cls.connect(url, queue_type=queue_type, queue_expires_ms=queue_expires_ms)
        except BusUnavailable as exc:
            log.warning("%s; starting without it and retrying every %g s", exc, retry_seconds)
        bus = cls(None, None, queue_type=queue_type, queue_expires_ms=queue_expires_ms)
        bus._connecting = asyncio.create_task(
            bus._connect_later(url, retry_seconds), name="amqp-connect"
        )
        return bus

    async def _connect_later(self, url: str, retry_seconds: float) -> None:
        """Retry the first connection, then start the subscriptions asked for meanwhile."""
        while True:
            await asyncio.sleep(retry_seconds)
            try:
                bus = await AmqpBus.connect(url)
            except BusUnavailable:
                continue
            except Exception:
                log.exception("connecting to RabbitMQ failed; retrying")
                continue
            self._connection, self._exchange = bus._connection, bus._exchange
            log.info("connected to RabbitMQ at %s", _redacted(url))
            break
        while self._pending:
            pending = self._pending[0]
            if not pending.cancelled:
                try:
                    pending.inner = await self._subscribe_now(
                        pending.queue, pending.routing_key, pending.handler
                    )
                    if pending.cancelled:  # cancelled while it was being declared
                        await pending.inner.cancel()
                except BusError as exc:
                    log.warning("cannot consume %s yet: %s; retrying", pending.queue, exc)
                    await asyncio.sleep(retry_seconds)
                    continue
            self._pending.pop(0)

    async def publish(
        self, routing_key: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm."""
        await self.publish_many(routing_key, [body], headers)

    async def publish_many(
        self, routing_key: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish all messages at once and wait for every confirm; on a transient failure
        the whole batch is published again, in order (duplicates are allowed, gaps not)."""
        if self._closed:
            raise BusUnavailable("AMQP bus is closed")
        if not bodies:
            return
        messages = [
            aio_pika.Message(
                bytes(body),
                headers=dict(headers or {}),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            for body in bodies
        ]
        deadline = asyncio.get_running_loop().time() + self._retry_seconds
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._retry_seconds),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._publish_once(routing_key, messages, deadline)
        except PublishError as exc:
            raise Unroutable(f"no queue is bound to routing key {routing_key!r}") from exc
        except _TRANSIENT as exc:
            raise BusUnavailable(
                f"RabbitMQ did not confirm a publish to {routing_key!r} "
                f"within {self._retry_seconds:g} s: {exc!r}"
            ) from exc

    async def _publish_once(
        self, routing_key: str, messages: list[aio_pika.Message], deadline: float
    ) -> None:
        """One attempt, bounded by what is left of the retry budget (at least 0.5 s)."""
        exchange = self._exchange
        if exchange is None:
            await asyncio.sleep(0.2)  # let the retry loop wait for the first connection
            raise ConnectionError("not connected to RabbitMQ yet")
        budget = max(deadline - asyncio.get_running_loop().time(), 0.5)
        async with asyncio.timeout(budget):
            results = await asyncio.gather(
                *(exchange.publish(message, routing_key, mandatory=True) for message in messages),
                return_exceptions=True,
            )
        errors = [result for result in results if isinstance(result, BaseException)]
        # A return is a verdict about the routing key, whatever else failed alongside.
        for error in errors:
            if isinstance(error, PublishError):
                raise error
        if errors:
            raise errors[0]

    async def subscribe(
        self, queue: str, routing_key: str, handler: Handler
    ) -> _AmqpSubscription | _PendingSubscription:
        """Declare the durable, self-expiring queue, bind it and start consuming it (once
        connected, when the bus is still waiting for its first connection)."""
        if self._closed:
            raise BusUnavailable("AMQP bus is closed")
        if self._connection is None:
            pending = _PendingSubscription(queue, routing_key, handler)
            self._pending.append(pending)
            return pending
        return await self._subscribe_now(queue, routing_key, handler)

    async def _subscribe_now(
        self, queue: str, routing_key: str, handler: Handler
    ) -> _AmqpSubscription:
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=self._prefetch)
            declared = await channel.declare_queue(
                queue, durable=True, arguments=self._queue_arguments
            )
            await declared.bind(EXCHANGE, routing_key)
            subscription = _AmqpSubscription(channel, declared, handler)
            await subscription.start()
        except BaseException as exc:
            with contextlib.suppress(*_TRANSIENT):
                await channel.close()
            if isinstance(exc, ChannelClosed):
                raise BusError(f"cannot consume queue {queue!r}: {exc!r}") from exc
            if isinstance(exc, _TRANSIENT):
                raise BusUnavailable(f"cannot consume queue {queue!r}: {exc!r}") from exc
            raise
        self._subscriptions.append(subscription)
        return subscription

    async def ping(self) -> bool:
        """True when the connection is open (not closed, not in the middle of reconnecting)."""
        connection = self._connection
        return not self._closed and connection is not None and connection.connected.is_set()

    async def close(self) -> None:
        """Cancel every subscription, then close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        for pending in self._pending:
            pending.cancelled = True
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.cancel()
        if self._connection is not None:
            await self._connection.close()
