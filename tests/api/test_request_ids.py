"""One request id follows a message: WebSocket frame -> gRPC -> outbox/AMQP -> push."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from svckit.logs import request_id_var
from tests.api.ws_support import clients, direct_pair
from tests.harness import running_system


class _Stamp(logging.Filter):
    """What the production log filter does: stamp each record with the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


async def test_one_request_id_across_every_hop(
    shape: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway, the chat service, the outbox's publisher and the consumer log the send's
    request id."""
    caplog.handler.addFilter(_Stamp())
    async with running_system(shape, tmp_path) as system:
        ann, bob, chat = await direct_pair(system)
        async with clients(system, ann, bob) as (a, b):
            await asyncio.sleep(0.3)
            with caplog.at_level(logging.DEBUG):
                caplog.clear()
                await a.send_text(chat["id"], "follow me")
                await b.next_update()
                await asyncio.sleep(0.2)
    sent = next(r for r in caplog.records if r.getMessage().startswith("ws send_message"))
    rid = sent.request_id  # type: ignore[attr-defined]
    hops = {r.name for r in caplog.records if getattr(r, "request_id", "") == rid}
    assert rid
    assert {
        "minitg.gateway.ws",
        "minitg.grpc",
        "minitg.delivery",  # the outbox relay's PodPublisher
        "minitg.gateway.delivery",
    } <= hops
