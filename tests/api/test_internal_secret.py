"""The internal service credential: no well-known value, random per process when unset."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from minitg.chat.v1 import (
    chat_internal_service_pb2,
    chat_internal_service_pb2_grpc,
    chat_pb2,
    chat_service_pb2,
)

from svckit.config import Config
from svckit.envparse import ConfigError
from svckit.errors import details_from_rpc_error
from tests.api.ws_support import clients, direct_pair
from tests.harness import SHAPES, running_system

OLD_EMBEDDED_CONSTANT = "embedded-internal-token"


def _relay(user_id: int, chat_id: int) -> chat_internal_service_pb2.RelaySendsRequest:
    send = chat_service_pb2.SendMessageRequest(
        chat_id=chat_id, client_msg_id="forged-1", body=chat_pb2.MessageBody(text="as you")
    )
    item = chat_internal_service_pb2.RelayedSend(user_id=user_id, session_id="s", send=send)
    return chat_internal_service_pb2.RelaySendsRequest(items=[item])


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", SHAPES)
async def test_old_constant_no_longer_opens_internal_rpcs(shape: str, tmp_path: Path) -> None:
    """RelaySends with the former built-in token is UNAUTHENTICATED; the roles, sharing the
    per-process random secret, still relay a WebSocket send."""
    async with running_system(shape, tmp_path) as system:
        ann, bob, chat = await direct_pair(system)
        stub = chat_internal_service_pb2_grpc.ChatInternalServiceStub(system.channel("chat"))
        forged = (("authorization", f"Service {OLD_EMBEDDED_CONSTANT}"),)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.RelaySends(_relay(ann.user_id, chat["id"]), metadata=forged)
        assert grpc.StatusCode.UNAUTHENTICATED == info.value.code()
        assert "TOKEN_INVALID" == details_from_rpc_error(info.value).reason

        async with clients(system, ann, bob) as (a, _b):
            sent = await a.send_text(chat["id"], "hi", client_msg_id="ok-1")
        assert 0 < sent.message_id


def test_unset_token_is_random_per_process() -> None:
    """Two configs built without MINITG_INTERNAL_TOKEN get different, long secrets."""
    first, second = Config.from_environ({}), Config.from_environ({})
    assert first.messaging.internal_token != second.messaging.internal_token
    assert OLD_EMBEDDED_CONSTANT != first.messaging.internal_token
    assert 40 <= len(first.messaging.internal_token)
    assert first.messaging.internal_token_configured is False


def test_every_split_role_needs_a_configured_token() -> None:
    """Each split role, auth included (it trusts the gateway's client IP), refuses to start
    without MINITG_INTERNAL_TOKEN; the all-in-one process makes its own."""
    cfg = Config.from_environ(
        {
            "MINITG_DATABASE_URL": "postgresql://db/x",
            "MINITG_REDIS_URL": "redis://r",
            "MINITG_BROKER_URL": "amqp://mq/",
        }
    )
    cfg.check_target("all")
    for target in ("auth", "chat", "presence", "gateway"):
        with pytest.raises(ConfigError, match=r"^MINITG_INTERNAL_TOKEN:"):
            cfg.check_target(target)
