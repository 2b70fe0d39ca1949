"""The chat service's Prometheus metrics after real sends, read from the in-process registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from minitg.chat.v1 import chat_service_pb2_grpc
from prometheus_client import REGISTRY

from tests.api.test_chat_service import Chat, direct, fake_pod, send
from tests.harness import SHAPES, running_system

pytestmark = pytest.mark.asyncio(loop_scope="module")

COUNTERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("minitg_messages_sent_total", {}),
    ("minitg_send_commit_seconds_count", {}),
    ("minitg_send_commit_seconds_sum", {}),
    ("minitg_delivery_published_total", {"outcome": "ok"}),
    ("minitg_outbox_published_rows_total", {}),
)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def chat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Chat]:
    tmp: Path = tmp_path_factory.mktemp(f"metrics-{request.param}")
    env = {"MINITG_SESSION_CHECK_TTL_SECONDS": "0"}
    async with running_system(request.param, tmp, roles=("auth", "chat"), env=env) as system:
        yield Chat(system, chat_service_pb2_grpc.ChatServiceStub(system.channel("chat")))


def samples() -> dict[str, float]:
    return {name: REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in COUNTERS}


async def grown(before: dict[str, float], timeout: float = 5.0) -> dict[str, float]:
    """How much each counter grew, once all of them have (the relay counts after publishing)."""
    async with asyncio.timeout(timeout):
        while True:
            delta = {name: value - before[name] for name, value in samples().items()}
            if all(delta.values()):
                return delta
            await asyncio.sleep(0.01)


async def test_sends_move_the_chat_metrics(chat: Chat) -> None:
    """Sends count messages (not retries), time their transactions, and the relay counts
    its publishes and rows and exports the outbox lag and the pool gauge."""
    a, b = await chat.users(2)
    d = await direct(chat, a, b)
    before = samples()
    async with fake_pod(chat.system, [a, b]) as pod:
        for i in range(5):
            await send(chat, a, d.id, f"m{i}", cmid=f"metrics-{d.id}-{i}")
        await send(chat, a, d.id, "m0", cmid=f"metrics-{d.id}-0")  # a retry
        await pod.wait_for_item("new_message", text="m4")
        delta = await grown(before)
    assert (5.0, 6.0) == (
        delta["minitg_messages_sent_total"],
        delta["minitg_send_commit_seconds_count"],
    )
    assert delta["minitg_send_commit_seconds_sum"] > 0
    assert delta["minitg_outbox_published_rows_total"] >= 1
    assert delta["minitg_delivery_published_total"] >= 1
    assert REGISTRY.get_sample_value("minitg_outbox_lag_seconds") is not None
    assert REGISTRY.get_sample_value("minitg_db_pool_in_use", {"role": "chat"}) is not None
