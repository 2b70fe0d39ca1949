"""The chat service's stores and outbox relay on every storage and bus adapter.

These run the real SQL (PostgreSQL and SQLite) and a real bus (RabbitMQ and memory) with
no gRPC around them, which is how a crash between commit and publish is simulated: the
send commits while no relay runs, and a relay started afterwards still delivers it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import cast

from minitg.delivery.v1 import delivery_pb2
from prometheus_client import REGISTRY

from chat_service.adapters.membership import Actor, MembershipStore
from chat_service.adapters.messages import MessageStore
from chat_service.adapters.outbox import HAND_OVER_GRACE_MS, OutboxRelay
from chat_service.adapters.reads import ReadStore
from chat_service.adapters.updatelog import Outboxed
from chat_service.domain.model import (
    Body,
    BodyKind,
    Outgoing,
    ReadRequest,
    SendItem,
    SendResult,
)
from svckit.backends import EmbeddedBackends
from svckit.migrations import Migrator
from svckit.ports import BusUnavailable, Database, MessageBus
from svckit.registry import REBUILD_SECONDS, ConnectionRegistry

from .conftest import BusFactory, Collector, DatabaseFactory

ALICE, BOB = 101, 202


async def migrated(databases: DatabaseFactory) -> Database:
    db = await databases.open()
    await Migrator(db, "chat_service").up()
    return db


def actor(user_id: int, now_ms: int = 1_000) -> Actor:
    return Actor(user_id, f"session-{user_id}", now_ms, "rid-1")


def item(chat_id: int, cmid: str, text: str) -> SendItem:
    return SendItem(chat_id, cmid, Body(BodyKind.TEXT, text=text))


def known_registry() -> ConnectionRegistry:
    """A registry that is never in doubt: a user with no entry is offline at once."""
    return ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), 60, rebuild_seconds=0)


async def unpublished(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL"))


async def test_committed_send_is_delivered_by_a_later_relay(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """A send committed with no relay running (a crash before publish) is delivered later."""
    db = await migrated(databases)
    chat_id, *_ = await MembershipStore(db).create_direct(actor(ALICE), BOB)
    [sent] = await MessageStore(db).send(
        [Outgoing(ALICE, "session-101", item(chat_id, "c1", "hi"))], 2_000, "rid-2"
    )
    assert isinstance(sent, SendResult)
    assert 2 == await unpublished(db)  # NewChat and NewMessage, still waiting

    bus, queue, collector = await buses.open(), buses.queue(), Collector()
    await bus.subscribe(queue, queue, collector)
    registry = known_registry()
    await registry.add(BOB, queue)
    relay = OutboxRelay(db, bus, registry, poll_seconds=60)
    assert 2 == await relay.publish_pending()  # the new process's first round
    deliveries = await collector.wait_for(1)
    items = [i for d in deliveries for i in delivery_pb2.DeliveryBatch.FromString(d.body).items]
    assert ["new_chat", "new_message"] == [i.update.WhichOneof("update") for i in items]
    assert [[BOB], [BOB]] == [[r.user_id for r in i.recipients] for i in items]
    assert "rid-1" == deliveries[0].headers.get("x-request-id")


async def test_relay_skips_gone_pods_and_marks_rows(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """Rows whose only pod is gone (Unroutable) are marked published, not retried forever."""
    db = await migrated(databases)
    await MembershipStore(db).create_direct(actor(ALICE), BOB)
    bus = await buses.open()
    registry = known_registry()
    await registry.add(BOB, buses.queue())  # registered, but no queue is bound to it
    relay = OutboxRelay(db, bus, registry, poll_seconds=60)
    assert 1 == await relay.publish_pending()
    assert 0 == await unpublished(db)


async def test_sends_to_one_chat_allocate_gapless_seqs_concurrently(
    databases: DatabaseFactory,
) -> None:
    """Concurrent send transactions on one chat get seqs 1..n and pts 1..n per member."""
    db = await migrated(databases)
    chat_id, *_ = await MembershipStore(db).create_direct(actor(ALICE), BOB)
    store = MessageStore(db)
    outcomes = await asyncio.gather(
        *(
            store.send([Outgoing(ALICE, "s", item(chat_id, f"c{i}", f"m{i}"))], 3_000, "")
            for i in range(20)
        )
    )
    results = [o for [o] in outcomes if isinstance(o, SendResult)]
    assert list(range(1, 21)) == sorted(r.seq for r in results)
    assert list(range(2, 22)) == sorted(r.pts for r in results)  # pts 1 was NewChat
    bob_pts = await db.fetch("SELECT pts FROM updates WHERE user_id = $1 ORDER BY pts", BOB)
    assert list(range(1, 22)) == [r["pts"] for r in bob_pts]


async def test_read_recounts_unread_and_reports_outbox(databases: DatabaseFactory) -> None:
    """A read recounts the reader's unread messages and logs ReadOutbox for the sender."""
    db = await migrated(databases)
    chat_id, *_ = await MembershipStore(db).create_direct(actor(ALICE), BOB)
    items = [item(chat_id, f"c{i}", f"m{i}") for i in range(3)]
    await MessageStore(db).send([Outgoing(ALICE, "s", i) for i in items], 3_000, "")
    [result] = await ReadStore(db).read([ReadRequest(BOB, "sb", chat_id, 2)], 4_000, "")
    assert (1, 1) == (getattr(result, "unread_count", None), getattr(result, "pts_count", None))
    kinds = await db.fetch("SELECT kind FROM updates WHERE user_id = $1 ORDER BY pts", ALICE)
    assert [9, 4, 4, 4, 8] == [r["kind"] for r in kinds]


class DownBus:
    """A bus whose broker never confirms a publish."""

    async def publish(
        self, routing_key: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        raise BusUnavailable("broker down")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_relay_metrics_follow_failures_and_recovery(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """A failed publish counts as failed and leaves the outbox lag growing; the next good
    round counts ok and published rows and sets the lag back to 0."""
    db = await migrated(databases)
    await MembershipStore(db).create_direct(actor(ALICE), BOB)  # outbox row at t=1 s
    registry = known_registry()
    queue = buses.queue()
    await registry.add(BOB, queue)
    failed, ok = sample("minitg_delivery_published_total", outcome="failed"), 0.0
    down = OutboxRelay(
        db, cast(MessageBus, DownBus()), registry, poll_seconds=60, clock=lambda: 6.5
    )
    assert 0 == await down.publish_pending()
    await down.observe()
    assert (failed + 1, 5.5) == (
        sample("minitg_delivery_published_total", outcome="failed"),
        sample("minitg_outbox_lag_seconds"),
    )
    bus = await buses.open()
    await bus.subscribe(queue, queue, Collector())
    ok, rows = (
        sample("minitg_delivery_published_total", outcome="ok"),
        sample("minitg_outbox_published_rows_total"),
    )
    relay = OutboxRelay(db, bus, registry, poll_seconds=60, clock=lambda: 7.0)
    assert 1 == await relay.publish_pending()
    await relay.observe()
    assert (ok + 1, rows + 1, 0.0) == (
        sample("minitg_delivery_published_total", outcome="ok"),
        sample("minitg_outbox_published_rows_total"),
        sample("minitg_outbox_lag_seconds"),
    )


async def test_pool_gauge_counts_connections_in_use(databases: DatabaseFactory) -> None:
    """The relay reports checked-out connections (PostgreSQL) and 0 without a pool (SQLite)."""
    db = await migrated(databases)
    relay = OutboxRelay(
        db,
        cast(MessageBus, DownBus()),
        known_registry(),
        poll_seconds=60,
        role="chat-test",
    )
    expected = 0.0
    if db.dialect == "postgres":
        async with db.transaction() as tx:
            await tx.fetchval("SELECT 1")
            await relay.observe()  # on a second connection while the transaction holds one
        expected = 1.0
    else:
        await relay.observe()
    assert expected == sample("minitg_db_pool_in_use", role="chat-test")


async def handed_over_send(
    databases: DatabaseFactory, buses: BusFactory
) -> tuple[Database, list[Outboxed], ConnectionRegistry, str]:
    """A direct chat whose NewChat row is already published, then one send whose outbox
    row was handed over (captured in the returned list instead of a relay)."""
    db = await migrated(databases)
    chat_id, *_ = await MembershipStore(db).create_direct(actor(ALICE), BOB)
    await db.execute("UPDATE outbox SET published_at_ms = 1")
    handed: list[Outboxed] = []
    [sent] = await MessageStore(db, handed.append).send(
        [Outgoing(ALICE, "session-101", item(chat_id, "c1", "hi"))], 2_000, "rid-2"
    )
    assert isinstance(sent, SendResult)
    registry = known_registry()
    queue = buses.queue()
    await registry.add(BOB, queue)
    return db, handed, registry, queue


async def test_a_handed_over_row_is_published_from_memory_once(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """The send path hands its committed row to the relay: published from memory, marked
    by the next marking round, and no polling round (of this or another process)
    publishes it again, before or after the mark."""
    db, handed, registry, queue = await handed_over_send(databases, buses)
    bus, collector = await buses.open(), Collector()
    await bus.subscribe(queue, queue, collector)
    relay = OutboxRelay(db, bus, registry, poll_seconds=60, clock=lambda: 2.5)
    assert 0 == await relay.publish_pending()  # another relay's poll: not its row yet
    [row] = handed
    relay.hand_over(row)
    assert 1 == await relay.publish_handed_over()
    [delivery] = await collector.wait_for(1)
    [pushed] = delivery_pb2.DeliveryBatch.FromString(delivery.body).items
    assert ("new_message", [BOB]) == (
        pushed.update.WhichOneof("update"),
        [r.user_id for r in pushed.recipients],
    )
    assert 1 == await unpublished(db)  # published, its mark still to come
    assert 0 == await relay.publish_pending()  # within the grace: left to its writer
    assert (1, 0) == (await relay.mark_published_rows(), await relay.mark_published_rows())
    assert 0 == await unpublished(db)
    later = OutboxRelay(db, bus, registry, poll_seconds=60, clock=lambda: 60.0)
    assert (0, 0) == (await later.publish_pending(), await relay.publish_handed_over())
    await asyncio.sleep(0.2)
    assert 1 == len(collector.bodies)


def chat_of(row: Outboxed) -> int:
    return row.batch.items[0].update.new_message.message.chat_id


async def test_the_running_relay_marks_published_rows_soon_and_at_stop(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """The relay's task marks what it published within ``mark_every_seconds``; rows
    published since its last mark are marked when it stops."""
    db, handed, registry, queue = await handed_over_send(databases, buses)
    bus, collector = await buses.open(), Collector()
    await bus.subscribe(queue, queue, collector)
    soon = OutboxRelay(
        db, bus, registry, poll_seconds=60, clock=lambda: 3.5, mark_every_seconds=0.05
    )
    soon.start()
    try:
        soon.hand_over(handed[0])
        await collector.wait_for(1)
        for _ in range(250):  # the mark is in the database: poll it, up to 5 s
            if not await unpublished(db):
                break
            await asyncio.sleep(0.02)
        assert 0 == await unpublished(db)
    finally:
        await soon.stop()
    again = Outgoing(ALICE, "session-101", item(chat_of(handed[0]), "c2", "again"))
    [row] = await MessageStore(db, handed.append).send([again], 3_000, "rid-3")
    assert isinstance(row, SendResult)
    late = OutboxRelay(db, bus, registry, poll_seconds=60, clock=lambda: 3.5, mark_every_seconds=60)
    late.start()
    try:
        late.hand_over(handed[1])
        await collector.wait_for(2)
        assert 1 == await unpublished(db)  # not due for a minute
    finally:
        await late.stop()
    assert 0 == await unpublished(db)
    assert 2 == len(collector.bodies)


async def test_a_handed_over_row_its_writer_never_published_is_polled_after_the_grace(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """A handed-over row whose writer failed to publish it (broker down, or a crash
    before the hand-over) is left alone during the grace, then published by polling."""
    db, handed, registry, queue = await handed_over_send(databases, buses)
    down = OutboxRelay(db, cast(MessageBus, DownBus()), registry, poll_seconds=60)
    down.hand_over(handed[0])
    assert 0 == await down.publish_handed_over()
    assert 1 == await unpublished(db)
    bus, collector = await buses.open(), Collector()
    await bus.subscribe(queue, queue, collector)
    grace_s = HAND_OVER_GRACE_MS / 1000
    early = OutboxRelay(db, bus, registry, poll_seconds=60, clock=lambda: 2.0 + grace_s - 0.1)
    assert 0 == await early.publish_pending()
    late = OutboxRelay(db, bus, registry, poll_seconds=60, clock=lambda: 2.0 + grace_s + 0.1)
    assert 1 == await late.publish_pending()
    assert 1 == len(await collector.wait_for(1))
    assert 0 == await unpublished(db)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class FlakyBus:
    """A bus whose first ``failures`` publishes are not confirmed."""

    def __init__(self, bus: MessageBus, failures: int) -> None:
        self._bus, self._failures = bus, failures

    async def publish(
        self, routing_key: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        if self._failures > 0:
            self._failures -= 1
            raise BusUnavailable("broker down")
        await self._bus.publish(routing_key, body, headers)


def recipients_of(body: bytes) -> list[list[int]]:
    batch = delivery_pb2.DeliveryBatch.FromString(body)
    return [[r.user_id for r in i.recipients] for i in batch.items]


async def test_a_row_the_reborn_registry_cannot_place_yet_waits_and_is_not_marked(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """While the registry is in doubt, a handed-over row reaches each recipient once their
    pod has re-registered, and is marked published only when every recipient was placed or
    the doubt is over (a recipient still missing then is offline)."""
    db, handed, _, queue = await handed_over_send(databases, buses)
    clock = Clock()
    registry = ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), 60, clock=clock)
    bus, collector = await buses.open(), Collector()
    await bus.subscribe(queue, queue, collector)
    relay = OutboxRelay(db, bus, registry, poll_seconds=60, retry_seconds=0)
    relay.hand_over(handed[0])
    assert 0 == await relay.publish_handed_over()  # the registry was just born: nobody placed
    assert (0, 1) == (await relay.mark_published_rows(), await unpublished(db))
    await registry.add(BOB, queue)  # Bob's gateway re-registers him
    assert 0 == await relay.publish_handed_over()  # Bob reached; Alice's devices unknown
    assert [[BOB]] == recipients_of((await collector.wait_for(1))[0].body)
    assert (0, 1) == (await relay.mark_published_rows(), await unpublished(db))
    clock.now += REBUILD_SECONDS  # the doubt is over: Alice is offline
    assert 1 == await relay.publish_handed_over()
    assert (1, 0) == (await relay.mark_published_rows(), await unpublished(db))
    await asyncio.sleep(0.2)
    assert 1 == len(collector.bodies), "Bob got it once"


async def test_a_polled_row_the_reborn_registry_cannot_place_stays_unpublished(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """A polled row with a recipient the registry in doubt cannot place is published to
    the pods it can and left unpublished; after the doubt it is published and marked."""
    db = await migrated(databases)
    await MembershipStore(db).create_direct(actor(ALICE), BOB)  # NewChat for both
    clock = Clock()
    registry = ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), 60, clock=clock)
    queue = buses.queue()
    await registry.add(BOB, queue)
    bus, collector = await buses.open(), Collector()
    await bus.subscribe(queue, queue, collector)
    relay = OutboxRelay(db, bus, registry, poll_seconds=60, retry_seconds=0)
    assert (0, 1) == (await relay.publish_pending(), await unpublished(db))
    assert [[BOB]] == recipients_of((await collector.wait_for(1))[0].body)
    clock.now += REBUILD_SECONDS
    assert (1, 0) == (await relay.publish_pending(), await unpublished(db))


async def test_a_polled_row_in_doubt_reaches_each_recipient_once_across_rounds(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """While the registry is in doubt, later polling rounds publish a polled row only to the
    recipients it has not reached yet: the placed one gets it exactly once."""
    db = await migrated(databases)
    await MembershipStore(db).create_direct(actor(ALICE), BOB)  # NewChat for both
    clock = Clock()
    registry = ConnectionRegistry(EmbeddedBackends().hot_state("reg:"), 60, clock=clock)
    bob_queue, alice_queue = buses.queue(), buses.queue()
    await registry.add(BOB, bob_queue)
    bus, bobs, alices = await buses.open(), Collector(), Collector()
    await bus.subscribe(bob_queue, bob_queue, bobs)
    await bus.subscribe(alice_queue, alice_queue, alices)
    relay = OutboxRelay(db, bus, registry, poll_seconds=60, retry_seconds=0)
    assert (0, 1) == (await relay.publish_pending(), await unpublished(db))
    assert (0, 1) == (await relay.publish_pending(), await unpublished(db))  # Alice unknown
    await registry.add(ALICE, alice_queue)  # Alice's gateway re-registers her
    assert (1, 0) == (await relay.publish_pending(), await unpublished(db))
    assert [[ALICE]] == recipients_of((await alices.wait_for(1))[0].body)
    await asyncio.sleep(0.2)
    assert [[[BOB]]] == [recipients_of(body) for body in bobs.bodies], "Bob got it once"


async def test_a_handed_over_row_whose_publish_failed_is_retried_by_its_relay(
    databases: DatabaseFactory, buses: BusFactory
) -> None:
    """A handed-over row whose publish failed (broker or Redis down) is retried by its own
    relay's next round instead of waiting for the polling grace."""
    db, handed, registry, queue = await handed_over_send(databases, buses)
    bus, collector = await buses.open(), Collector()
    await bus.subscribe(queue, queue, collector)
    relay = OutboxRelay(
        db, cast(MessageBus, FlakyBus(bus, failures=1)), registry, poll_seconds=60,
        retry_seconds=0,
    )  # fmt: skip
    relay.hand_over(handed[0])
    assert 0 == await relay.publish_handed_over()
    assert 1 == await relay.publish_handed_over()
    assert [[BOB]] == recipients_of((await collector.wait_for(1))[0].body)
    assert (1, 0) == (await relay.mark_published_rows(), await unpublished(db))
