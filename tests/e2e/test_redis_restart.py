"""A Redis restart (which empties it) during steady traffic never stops live delivery.

Distributed shape on a private Redis the test restarts: the connection registry lives only
there, so after the restart every gateway must put its sockets back and the chat outbox
must not treat the recipients it cannot place yet as offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import aiohttp
import pytest

from svckit.backends import open_database
from tests.e2e.cluster import Cluster, distributed_cluster
from tests.e2e.test_messaging import _direct_pair, _drain
from tests.private_redis import PrivateRedis
from tgclient import MinitgClient
from tgclient.errors import ConnectionClosed, RequestFailed

pytestmark = pytest.mark.e2e

UNPUBLISHED = "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL"
SKIPPED_OFFLINE = re.compile(
    r'^minitg_delivery_recipients_skipped_total\{path="chat",reason="offline"\} (\S+)$', re.M
)


async def _skipped_offline(cluster: Cluster) -> float:
    """Recipients the chat processes' outboxes skipped as offline, summed."""
    total = 0.0
    async with aiohttp.ClientSession() as http:
        for proc in cluster.procs:
            if proc.name.startswith("chat"):
                url = f"http://{proc.env['MINITG_METRICS_ADDR']}/metrics"
                async with http.get(url) as resp:
                    found = SKIPPED_OFFLINE.search(await resp.text())
                total += float(found.group(1)) if found else 0.0
    return total


async def _unpublished_rows(cluster: Cluster) -> int:
    """Outbox rows still unpublished once the relays had up to 5 s to mark the last ones."""
    db = await open_database(cluster.proc("chat0").env["MINITG_DATABASE_URL"], "chat")
    try:
        for _ in range(50):
            left = int(await db.fetchval(UNPUBLISHED))
            if not left:
                break
            await asyncio.sleep(0.1)
        return left
    finally:
        await db.close()


async def _send_steadily(
    client: MinitgClient, chat_id: int, tag: str, until: asyncio.Event, acked: dict[int, float]
) -> None:
    """One message every 50 ms until ``until`` is set; each retried (same client_msg_id)
    through failures; ``acked`` maps message id -> when the send was acknowledged."""
    loop, i = asyncio.get_running_loop(), 0
    while not until.is_set():
        for attempt in range(60):
            try:
                ack = await client.send_text(chat_id, f"{tag}{i}", client_msg_id=f"{tag}-{i}")
                acked[ack.message_id] = loop.time()
                break
            except (ConnectionClosed, RequestFailed, ConnectionError, TimeoutError):
                await asyncio.sleep(min(0.1 * (attempt + 1), 0.5))
        i += 1
        await asyncio.sleep(0.05)


async def _receive(client: MinitgClient, arrived: dict[int, float], news: asyncio.Event) -> None:
    """Record when each new message reached ``client`` live (its gap grace is infinite:
    nothing comes from GetDifference, and a missed message holds back every later one)."""
    loop = asyncio.get_running_loop()
    while True:
        update = await client.next_update(3600)
        if update.WhichOneof("update") == "new_message":
            arrived.setdefault(update.new_message.message.id, loop.time())
            news.set()


async def _down_for_a_second(redis: PrivateRedis) -> float:
    """Stop Redis, keep it down a second (sends fail and are retried), start it empty;
    return how long it took."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.to_thread(redis.stop)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(redis.start)
    return loop.time() - began


def _late(acked: dict[int, float], arrived: dict[int, float], bound: float) -> list[object]:
    """(delay, message id) of each message that arrived more than ``bound`` s after its
    acknowledgement (inf: never)."""
    delays = {m: arrived.get(m, float("inf")) - at for m, at in acked.items()}
    return sorted((round(d, 2), m) for m, d in delays.items() if d > bound)


async def test_redis_restart_during_traffic_keeps_live_delivery(tmp_path: Path) -> None:
    """Redis goes down for a second and comes back empty mid-stream: every online recipient
    gets every message live within the restart's duration + 2 s of its acknowledgement, the
    outbox never skips them as offline, and every outbox row ends up published."""
    redis = PrivateRedis()
    redis.start()
    try:
        async with distributed_cluster(tmp_path, redis_url=redis.url) as cluster:
            ann, bob, chat = await _direct_pair(cluster)
            a = MinitgClient(cluster.ws(0), ann.access_token, gap_grace=3600)
            b = MinitgClient(cluster.ws(1), bob.access_token, gap_grace=3600)
            await a.connect()
            await b.connect()
            stop, news = asyncio.Event(), asyncio.Event()
            to_bob: dict[int, float] = {}
            to_ann: dict[int, float] = {}
            at_bob: dict[int, float] = {}
            at_ann: dict[int, float] = {}
            tasks: list[asyncio.Task[None]] = []
            try:
                await _drain(a, b)
                skipped_before = await _skipped_offline(cluster)
                tasks = [
                    asyncio.create_task(_receive(a, at_ann, news)),
                    asyncio.create_task(_receive(b, at_bob, news)),
                    asyncio.create_task(_send_steadily(a, chat["id"], "a", stop, to_bob)),
                    asyncio.create_task(_send_steadily(b, chat["id"], "b", stop, to_ann)),
                ]
                await asyncio.sleep(1.0)
                restart_s = await _down_for_a_second(redis)
                await asyncio.sleep(3.0)  # steady traffic after the restart
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks[2:]), 60)
                with contextlib.suppress(TimeoutError):  # the last ones, at most 2 s more
                    async with asyncio.timeout(2.5):
                        while not (set(to_bob) <= set(at_bob) and set(to_ann) <= set(at_ann)):
                            news.clear()
                            await news.wait()
                late = {
                    "bob": _late(to_bob, at_bob, restart_s + 2.0),
                    "ann": _late(to_ann, at_ann, restart_s + 2.0),
                }
                assert {"bob": [], "ann": []} == late, f"restart took {restart_s:.2f} s"
                assert len(to_bob) > 40 and len(to_ann) > 40, "steady traffic on both sides"
                assert skipped_before == await _skipped_offline(cluster)
                assert 0 == await _unpublished_rows(cluster)
            finally:
                stop.set()
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                await a.close()
                await b.close()
    finally:
        await asyncio.to_thread(redis.remove)
