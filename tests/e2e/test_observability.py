"""After real traffic, every role's /metrics shows the metrics operators rely on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.cluster import Cluster, distributed_cluster
from tests.e2e.test_messaging import _accounts, _drain
from tgclient import MinitgClient, RestClient

pytestmark = pytest.mark.e2e

# role -> metric names (a sample matching the name must exist with a value above zero)
EXPECTED = {
    "gateway0": [
        "minitg_http_requests_total",
        "minitg_http_request_duration_seconds_count",
        "minitg_ws_connections",
        "minitg_ws_frames_total",
        "minitg_delivery_latency_seconds_count",
        "minitg_delivery_batches_consumed_total",
        "minitg_delivery_pushed_total",
        "minitg_grpc_client_handled_total",
        "minitg_event_loop_lag_seconds_count",
        "minitg_delivery_consumers",
    ],
    "chat0": [
        "minitg_grpc_server_handled_total",
        "minitg_grpc_server_handling_seconds_count",
        "minitg_messages_sent_total",
        "minitg_send_commit_seconds_count",
        "minitg_outbox_published_rows_total",
        "minitg_delivery_published_total",
        "minitg_dependency_up",
    ],
    "auth": ["minitg_grpc_server_handled_total", "minitg_auth_password_checks_total"],
    "presence": ["minitg_grpc_server_handled_total", "minitg_dependency_up"],
}
# Present (gauges that may legitimately read zero at scrape time).
PRESENT = {"chat0": ["minitg_outbox_lag_seconds", "minitg_db_pool_in_use"]}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with distributed_cluster(tmp_path, chats=1) as running:
        yield running


def _metrics_url(cluster: Cluster, role: str) -> str:
    return f"http://{cluster.proc(role).env['MINITG_METRICS_ADDR']}/metrics"


def _positive(text: str, name: str) -> bool:
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", re.MULTILINE)
    return any(float(value) > 0 for _, value in pattern.findall(text))


async def test_every_role_exposes_its_metrics_after_traffic(cluster: Cluster) -> None:
    """Sends, reads and typing through a gateway light up RED, delivery and queue metrics."""
    ann, bob = await _accounts(cluster, "ann", "bob")
    async with RestClient(cluster.gateways[0]) as rest:
        chat = await rest.direct_chat(ann.access_token, bob.user_id)
        await rest.login(ann.email, "password123", "second device")
    async with (
        MinitgClient(cluster.ws(0), ann.access_token) as a,
        MinitgClient(cluster.ws(0), bob.access_token) as b,
    ):
        await _drain(b)
        for i in range(5):
            await a.send_text(chat["id"], f"metric {i}")
        for _ in range(5):
            await b.next_update()
        await b.read_history(chat["id"], 5)
        await b.set_typing(chat["id"])
        await asyncio.sleep(1.0)  # event-loop lag samples, relay cycle
        async with aiohttp.ClientSession() as http:
            missing = []
            for role, names in EXPECTED.items():
                async with http.get(_metrics_url(cluster, role)) as resp:
                    assert 200 == resp.status
                    text = await resp.text()
                missing += [f"{role}: {n}" for n in names if not _positive(text, n)]
                missing += [f"{role}: {n}" for n in PRESENT.get(role, []) if n not in text]
    assert [] == missing
