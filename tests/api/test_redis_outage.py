"""A Redis outage is 503 / UNAVAILABLE with a retry hint on every surface, never 500 or
INTERNAL, and everything works again once Redis is back, without a restart.

The distributed shape only (the embedded shape's state is in memory), on a private Redis
that the test stops and starts itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from minitg.gateway.v1 import messages_pb2
from minitg.presence.v1 import presence_pb2
from prometheus_client import REGISTRY

from svckit.errors import details_from_rpc_error
from tests.api.auth_client import Reply, Rest
from tests.api.ws_support import clients, direct_pair
from tests.harness import System, running_system
from tests.private_redis import PrivateRedis
from tgclient.errors import RequestFailed

pytestmark = pytest.mark.asyncio


@pytest.fixture
def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server  # type: ignore[misc]
    finally:
        server.remove()


@pytest_asyncio.fixture
async def on_private_redis(
    private_redis: PrivateRedis, tmp_path: Path
) -> AsyncIterator[tuple[System, Rest]]:
    env = {"MINITG_REDIS_URL": private_redis.url, "MINITG_SESSION_CHECK_TTL_SECONDS": "0"}
    async with (
        running_system("distributed", tmp_path, env=env) as system,
        aiohttp.ClientSession() as http,
    ):
        yield system, Rest(http, system.http_url)


def _internal_errors() -> float:
    """Calls and requests the INTERNAL / 500 alerts count, over every service and route."""
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "minitg_grpc_server_handled_total":
                total += sample.value if sample.labels.get("grpc_code") == "INTERNAL" else 0
            elif sample.name == "minitg_http_requests_total":
                total += sample.value if sample.labels.get("status") == "500" else 0
    return total


def _assert_outage_answer(reply: Reply) -> None:
    assert (503, "UNAVAILABLE") == (reply.status, reply.code)
    assert "1" == reply.headers["Retry-After"]
    assert "1000" == reply.body["error"]["metadata"]["retry_after_ms"]


async def _ws_status(system: System, token: str) -> int:
    url = system.http_url.replace("http://", "ws://") + "/v1/ws"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> bool:
    """Poll ``check`` until it is true (or ``timeout`` seconds pass)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def test_redis_outage_is_503_then_recovers(
    private_redis: PrivateRedis, on_private_redis: tuple[System, Rest]
) -> None:
    """Redis stopped: register, login and WS upgrade answer 503 + Retry-After, gRPC Login
    UNAVAILABLE, a WebSocket request an UNAVAILABLE Error with retry_after_ms, refresh
    still works (fails open), nothing counts as INTERNAL; Redis back: all of it works."""
    system, rest = on_private_redis
    account = (await rest.register("before")).body
    email, password = account["user"]["email"], "correct horse battery"
    ann, _bob, chat = await direct_pair(system)
    internal_before = _internal_errors()
    async with clients(system, ann) as (socket,):
        private_redis.stop()
        typing = messages_pb2.SetTyping(
            chat_id=chat["id"], action=presence_pb2.TYPING_ACTION_TYPING
        )
        with pytest.raises(RequestFailed) as failed:
            await socket.request("set_typing", typing)
    assert ("UNAVAILABLE", True, 1000) == (
        failed.value.reason,
        failed.value.retryable,
        failed.value.retry_after_ms,
    )
    _assert_outage_answer(await rest.register("during"))
    _assert_outage_answer(await rest.login(email, password))
    stub = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Login(auth_service_pb2.LoginRequest(email=email, password=password))
    details = details_from_rpc_error(info.value)
    assert (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE") == (details.code, details.reason)
    assert "1000" == details.metadata["retry_after_ms"]
    assert 503 == await _ws_status(system, account["access_token"])
    refreshed = await rest.call(
        "POST", "/v1/auth/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert 200 == refreshed.status
    assert internal_before == _internal_errors()

    private_redis.start()

    async def login_works() -> bool:
        return (await rest.login(email, password)).status == 200

    assert await _eventually(login_works)
    assert 201 == (await rest.register("after")).status
    assert 101 == await _ws_status(system, refreshed.body["access_token"])
