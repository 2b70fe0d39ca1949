"""The ``ports.MessageBus`` contract, run against RabbitMQ and the in-process bus alike."""

from __future__ import annotations

import asyncio

import pytest
from yarl import URL

from svckit.adapters.amqp import AmqpBus
from svckit.backends import open_bus
from svckit.ports import BusUnavailable, Delivery, MessageBus, Subscription, Unroutable

from .conftest import AMQP_URL, BusFactory, Collector, TcpProxy, unique

QUIET_PERIOD = 0.3  # how long "nothing more arrives" is watched for


async def test_round_trip_with_headers(buses: BusFactory, bus: MessageBus) -> None:
    """A published message reaches the bound queue's handler with body, key and headers."""
    received = Collector()
    key = unique("rk-")
    await bus.subscribe(buses.queue(), key, received)

    await bus.publish(key, b"\x00hello", {"request-id": "r-1", "kind": "update"})

    [delivery] = await received.wait_for(1)
    assert Delivery(b"\x00hello", key, {"request-id": "r-1", "kind": "update"}) == delivery


async def test_order_preserved(buses: BusFactory, bus: MessageBus) -> None:
    """200 messages published one by one are handled in publish order."""
    received = Collector()
    key = unique("rk-")
    await bus.subscribe(buses.queue(), key, received)

    for i in range(200):
        await bus.publish(key, str(i).encode())

    await received.wait_for(200)
    assert [str(i).encode() for i in range(200)] == received.bodies


async def test_handler_runs_one_message_at_a_time(buses: BusFactory, bus: MessageBus) -> None:
    """A slow handler is never entered again before it returns."""
    key = unique("rk-")
    active = 0
    overlaps = 0
    done = Collector()

    async def slow(delivery: Delivery) -> None:
        nonlocal active, overlaps
        active += 1
        overlaps += active > 1
        await asyncio.sleep(0.005)
        active -= 1
        await done(delivery)

    await bus.subscribe(buses.queue(), key, slow)
    await bus.publish_many(key, [b"%d" % i for i in range(20)])

    await done.wait_for(20)
    assert 0 == overlaps


async def test_publish_many_in_order(buses: BusFactory, bus: MessageBus) -> None:
    """publish_many delivers every body, in order, each with the shared headers."""
    received = Collector()
    key = unique("rk-")
    await bus.subscribe(buses.queue(), key, received)
    bodies = [b"m%d" % i for i in range(100)]

    await bus.publish_many(key, bodies, {"batch": "1"})

    await received.wait_for(100)
    assert bodies == received.bodies
    assert [{"batch": "1"}] * 100 == [dict(d.headers) for d in received.deliveries]


async def test_unbound_routing_key_is_unroutable(bus: MessageBus) -> None:
    """Publishing to a routing key no queue is bound to raises Unroutable."""
    with pytest.raises(Unroutable):
        await bus.publish(unique("nobody-"), b"lost")
    with pytest.raises(Unroutable):
        await bus.publish_many(unique("nobody-"), [b"a", b"b"])


async def test_every_bound_queue_receives(buses: BusFactory, bus: MessageBus) -> None:
    """Two queues bound to one routing key each get their own copy."""
    key = unique("rk-")
    first, second = Collector(), Collector()
    await bus.subscribe(buses.queue(), key, first)
    await bus.subscribe(buses.queue(), key, second)

    await bus.publish(key, b"both")

    assert [b"both"] == [d.body for d in await first.wait_for(1)]
    assert [b"both"] == [d.body for d in await second.wait_for(1)]


async def test_failing_handler_redelivered_once(buses: BusFactory, bus: MessageBus) -> None:
    """A handler that raises gets the message once more (redelivered=True), then never again."""
    key = unique("rk-")
    poison, after = Collector(), Collector()

    async def handler(delivery: Delivery) -> None:
        if delivery.body == b"poison":
            await poison(delivery)
            raise RuntimeError("handler failure (expected by the test)")
        await after(delivery)

    await bus.subscribe(buses.queue(), key, handler)
    await bus.publish(key, b"poison")
    await poison.wait_for(2)

    await bus.publish(key, b"next")
    await after.wait_for(1)
    await asyncio.sleep(QUIET_PERIOD)

    assert [False, True] == [d.redelivered for d in poison.deliveries]
    assert [b"next"] == after.bodies


async def test_cancel_keeps_the_queue(buses: BusFactory, bus: MessageBus) -> None:
    """After cancel nothing reaches the old handler; later messages wait for the next one."""
    key, queue = unique("rk-"), buses.queue()
    old = Collector()
    subscription = await bus.subscribe(queue, key, old)
    await bus.publish(key, b"before")
    await old.wait_for(1)

    await subscription.cancel()
    await bus.publish_many(key, [b"after-1", b"after-2"])
    await asyncio.sleep(QUIET_PERIOD)
    assert [b"before"] == old.bodies

    new = Collector()
    await bus.subscribe(queue, key, new)
    await new.wait_for(2)
    assert [b"after-1", b"after-2"] == new.bodies


async def test_publish_reaches_another_handle(buses: BusFactory) -> None:
    """A publish from one bus handle reaches a subscriber on another (two services)."""
    publisher, consumer = await buses.open(), await buses.open()
    received = Collector()
    key = unique("rk-")
    await consumer.subscribe(buses.queue(), key, received)

    await publisher.publish(key, b"across")

    assert [b"across"] == [d.body for d in await received.wait_for(1)]


async def test_ping_and_close(bus: MessageBus) -> None:
    """ping is True while open; after close it is False and publish raises BusUnavailable."""
    assert await bus.ping() is True

    await bus.close()

    assert await bus.ping() is False
    with pytest.raises(BusUnavailable):
        await bus.publish(unique("rk-"), b"late")


async def test_cancel_from_inside_the_handler(buses: BusFactory, bus: MessageBus) -> None:
    """A handler may cancel its own subscription; later messages stay in the queue."""
    key, queue = unique("rk-"), buses.queue()
    seen: list[bytes] = []
    subscription: Subscription | None = None

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.body)
        assert subscription is not None
        await subscription.cancel()

    subscription = await bus.subscribe(queue, key, handler)
    await bus.publish_many(key, [b"one", b"two"])
    await asyncio.sleep(QUIET_PERIOD)
    assert [b"one"] == seen

    rest = Collector()
    await bus.subscribe(queue, key, rest)
    assert [b"two"] == [d.body for d in await rest.wait_for(1)]


async def test_unreachable_broker_is_bus_unavailable() -> None:
    """Connecting a bus on a port nobody listens on raises BusUnavailable (retryable)."""
    with pytest.raises(BusUnavailable) as caught:
        await AmqpBus.connect("amqp://guest:guest@127.0.0.1:1/")

    assert caught.value.retryable is True
    assert "guest:guest" not in str(caught.value)


async def test_bus_opened_on_unreachable_broker_starts_degraded() -> None:
    """open_bus on a port nobody listens on returns a bus that reports down and keeps
    connecting in the background (a role starts without its broker)."""
    bus = await open_bus("amqp://guest:guest@127.0.0.1:1/")
    try:
        assert False is await bus.ping()
    finally:
        await bus.close()


async def test_memory_buses_without_embedded_are_private() -> None:
    """Two memory:// buses opened without a shared EmbeddedBackends do not see each other."""
    first, second = await open_bus("memory://"), await open_bus("memory://")
    await first.subscribe("q", "rk", Collector())

    with pytest.raises(Unroutable):
        await second.publish("rk", b"x")


async def test_unknown_scheme_is_rejected() -> None:
    """A broker URL of an unsupported scheme is a ValueError naming that scheme."""
    with pytest.raises(ValueError, match="'kafka'"):
        await open_bus("kafka://broker:9092")


async def test_amqp_publish_rides_out_an_outage() -> None:
    """RabbitMQ only (memory has no connection to lose): publish gives up with BusUnavailable
    once its retry budget is spent; once the broker is back, publish and consume resume."""
    buses = BusFactory("amqp")
    upstream = URL(AMQP_URL)
    proxy = TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5672)
    await proxy.start()
    bus = await AmqpBus.connect(
        str(upstream.with_host("127.0.0.1").with_port(proxy.port)),
        queue_expires_ms=60_000,
        publish_retry_seconds=1.0,
        reconnect_interval=0.2,
    )
    try:
        received = Collector()
        key = unique("rk-")
        await bus.subscribe(buses.queue(), key, received)
        await bus.publish(key, b"one")
        await received.wait_for(1)

        await proxy.stop()
        started = asyncio.get_running_loop().time()
        with pytest.raises(BusUnavailable):
            await bus.publish(key, b"during the outage")
        assert 1.0 <= asyncio.get_running_loop().time() - started < 4.0

        await proxy.start()
        await bus.publish(key, b"two")
        await received.wait_for(2)
        assert [b"one", b"two"] == received.bodies
    finally:
        await bus.close()
        await proxy.stop()
        await buses.cleanup()
