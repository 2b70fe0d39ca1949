"""The send transaction alone: ``MessageStore.send`` on PostgreSQL, no gRPC, no sockets.

``python -m load.sendpath --batch 20`` creates a scratch database, migrates the chat
schema, makes 200 direct chats (``--group``: 200 groups of 50), then sends ``--rounds``
batches of ``--batch`` messages one after another on one connection and prints msg/s
(wall) and the CPU this process spent per message and per batch; PostgreSQL's own time is
the difference between wall and CPU. ``--relay`` also runs the outbox relay's polling
round after every batch (publishing to a bus that drops everything). The database is
dropped at the end. A measurement for ``load/README.md``, not a test.
"""

from __future__ import annotations

import argparse
import secrets
import time

import asyncpg
import uvloop

from chat_service.adapters.membership import Actor, MembershipStore
from chat_service.adapters.messages import MessageStore
from chat_service.adapters.outbox import OutboxRelay
from chat_service.domain.model import Body, BodyKind, Outgoing, SendItem
from load.system import POSTGRES_URL
from svckit.adapters.postgres import PostgresDatabase
from svckit.migrations import Migrator
from svckit.registry import Located

CHATS = 200


class _NoBus:
    async def publish(self, pod: str, body: bytes, headers: object = None) -> None:
        """Drop the batch: only the relay's own work is measured."""


class _OnePod:
    async def locate(self, users: list[int]) -> Located:
        return Located({"pod": list(users)}, [], in_doubt=False)


async def _chats(db: PostgresDatabase, group: bool) -> list[tuple[int, int]]:
    """(chat id, a member who sends) for each scratch chat."""
    rooms, chats = MembershipStore(db), []
    for n in range(CHATS):
        first = n * 50 + 1 if group else 2 * n + 1
        actor = Actor(first, f"s{first}", 1_000, "sendpath")
        if group:
            chat_id, *_ = await rooms.create_group(actor, "g", list(range(first, first + 50)), "")
        else:
            chat_id, *_ = await rooms.create_direct(actor, first + 1)
        chats.append((chat_id, first))
    return chats


async def _measure(db: PostgresDatabase, args: argparse.Namespace) -> str:
    chats, store = await _chats(db, args.group), MessageStore(db)
    relay = OutboxRelay(db, _NoBus(), _OnePod(), poll_seconds=60) if args.relay else None  # type: ignore[arg-type]
    sent = 0

    async def rounds(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            batch = []
            for _ in range(args.batch):
                chat_id, sender = chats[sent % CHATS]
                body = Body(BodyKind.TEXT, text=f"message {sent}")
                batch.append(Outgoing(sender, f"s{sender}", SendItem(chat_id, f"c{sent}", body)))
                sent += 1
            await store.send(batch, int(time.time() * 1000), "sendpath")
            if relay is not None:
                await relay.publish_pending()

    await rounds(20)  # warm the statement caches and the pool
    wall, cpu = time.perf_counter(), time.process_time()
    await rounds(args.rounds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    messages = args.rounds * args.batch
    return (
        f"batch {args.batch} ({'groups of 50' if args.group else 'direct chats'}"
        f"{', + relay' if args.relay else ''}): {messages / wall:,.0f} msg/s, "
        f"{1e6 * cpu / messages:.0f} us CPU per message, {1e3 * cpu / args.rounds:.2f} ms CPU "
        f"and {1e3 * wall / args.rounds:.2f} ms wall per batch"
    )


async def main(args: argparse.Namespace) -> None:
    name = f"minitg_sendpath_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = await PostgresDatabase.open(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}", "chat")
        try:
            await Migrator(db, "chat_service").up()
            print(await _measure(db, args))
        finally:
            await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=20, help="messages per send transaction")
    parser.add_argument("--rounds", type=int, default=200, help="batches measured")
    parser.add_argument("--group", action="store_true", help="groups of 50, not direct chats")
    parser.add_argument("--relay", action="store_true", help="plus a relay round per batch")
    uvloop.run(main(parser.parse_args()))
