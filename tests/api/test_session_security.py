"""Session security: refresh-token theft, ending sessions everywhere, durable revocations.

Every test runs on both shapes (embedded and distributed), through the real gateway and
auth service.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from svckit.backends import open_hot_state
from svckit.revocations import COMPLETE_KEY, revocations_namespace
from svckit.runner import make_role, stop_roles
from tests.api.auth_client import Reply, Rest
from tests.api.conftest import RestFactory
from tests.api.ws_support import next_frame, raw_socket, server_frames
from tests.harness import System, drop_redis_prefix

GRACE = {"MINITG_REFRESH_GRACE_SECONDS": "30"}


def _error(reply: Reply) -> tuple[int, str]:
    return reply.status, reply.code


async def _refresh(rest: Rest, token: str) -> Reply:
    return await rest.call("POST", "/v1/auth/refresh", json={"refresh_token": token})


def _tokens(reply: Reply) -> dict[str, Any]:
    assert reply.status in (200, 201), reply.body
    return dict(reply.body)


async def test_ancestor_of_a_used_token_is_theft_even_inside_grace(
    rest_system: RestFactory,
) -> None:
    """R0 -> R1 -> R2, then R0 again inside the grace window: reuse, the session is revoked."""
    async with rest_system(**GRACE) as (_, rest):
        r0 = _tokens(await rest.register("vic"))
        r1 = _tokens(await _refresh(rest, r0["refresh_token"]))
        r2 = _tokens(await _refresh(rest, r1["refresh_token"]))
        stolen = await _refresh(rest, r0["refresh_token"])
        assert (401, "REFRESH_TOKEN_REUSED") == _error(stolen)
        assert (401, "SESSION_REVOKED") == _error(await _refresh(rest, r2["refresh_token"]))
        me = await rest.call("GET", "/v1/users/me", token=r2["access_token"])
        assert (401, "SESSION_REVOKED") == _error(me)


async def test_lost_response_retry_is_honoured_exactly_once(rest_system: RestFactory) -> None:
    """R0 retried before R1 is used gets one new pair; a second retry of R0 is reuse."""
    async with rest_system(**GRACE) as (_, rest):
        r0 = _tokens(await rest.register("wes"))
        _tokens(await _refresh(rest, r0["refresh_token"]))  # the response the client lost
        retry = _tokens(await _refresh(rest, r0["refresh_token"]))
        again = await _refresh(rest, r0["refresh_token"])
        assert (401, "REFRESH_TOKEN_REUSED") == _error(again)
        assert (401, "SESSION_REVOKED") == _error(await _refresh(rest, retry["refresh_token"]))


async def test_concurrent_grace_retries_mint_one_pair(rest_system: RestFactory) -> None:
    """Several simultaneous retries of a rotated token: exactly one gets a pair."""
    async with rest_system(**GRACE) as (_, rest):
        r0 = _tokens(await rest.register("xan"))
        _tokens(await _refresh(rest, r0["refresh_token"]))
        replies = await asyncio.gather(*(_refresh(rest, r0["refresh_token"]) for _ in range(4)))
        assert 1 == sum(r.status == 200 for r in replies), [r.status for r in replies]


@asynccontextmanager
async def _second_gateway(system: System) -> AsyncIterator[str]:
    """Another gateway pod on the same backends; yields its WebSocket URL."""
    cfg = dataclasses.replace(system.cfg, pod_id=system.cfg.pod_id + "-b")
    role = make_role("gateway", cfg, system.embedded)
    await role.start()
    try:
        yield f"ws://127.0.0.1:{getattr(role, 'port', 0)}/v1/ws"
    finally:
        await stop_roles([role], 2.0)


async def test_refresh_reuse_closes_the_sessions_socket(rest_system: RestFactory) -> None:
    """Reuse detection revokes the session and its open WebSocket is closed with 4001."""
    async with rest_system(**GRACE) as (system, rest):
        r0 = _tokens(await rest.register("yan"))
        async with raw_socket(system, r0["access_token"]) as ws:
            await next_frame(ws, "hello")
            r1 = _tokens(await _refresh(rest, r0["refresh_token"]))
            _tokens(await _refresh(rest, r1["refresh_token"]))
            stolen = await _refresh(rest, r0["refresh_token"])
            assert (401, "REFRESH_TOKEN_REUSED") == _error(stolen)
            _, closed_with = await server_frames(ws, timeout=10)
            assert 4001 == closed_with


async def test_logout_over_grpc_closes_the_socket(rest_system: RestFactory) -> None:
    """AuthService.Logout called directly (no gateway involved) closes the socket with 4001."""
    async with rest_system() as (system, rest):
        reg = _tokens(await rest.register("zed"))
        stub = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
        async with raw_socket(system, reg["access_token"]) as ws:
            await next_frame(ws, "hello")
            await stub.Logout(
                auth_service_pb2.LogoutRequest(),
                metadata=(("authorization", f"Bearer {reg['access_token']}"),),
            )
            _, closed_with = await server_frames(ws, timeout=10)
            assert 4001 == closed_with


async def test_logout_closes_the_socket_on_another_pod(rest_system: RestFactory) -> None:
    """A REST logout through one gateway pod closes the session's socket on another pod."""
    async with (
        rest_system() as (system, rest),
        _second_gateway(system) as other_pod,
        aiohttp.ClientSession() as http,
    ):
        reg = _tokens(await rest.register("amy"))
        headers = {"Authorization": f"Bearer {reg['access_token']}"}
        async with http.ws_connect(other_pod, headers=headers) as ws:
            await next_frame(ws, "hello")
            out = await rest.call("POST", "/v1/auth/logout", token=reg["access_token"])
            assert 204 == out.status
            _, closed_with = await server_frames(ws, timeout=10)
            assert 4001 == closed_with


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def _upgrade(system: System, token: str) -> tuple[int, str]:
    """The status and error code of a WebSocket upgrade with ``token`` (101, "" if opened)."""
    headers = UPGRADE | {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{system.http_url}/v1/ws", headers=headers) as resp,
    ):
        if resp.status == 101:
            return 101, ""
        return resp.status, (await resp.json())["error"]["code"]


async def test_revocation_survives_the_store_forgetting(rest_system: RestFactory) -> None:
    """After the hot-state store forgets (Redis flush), a logged-out token stays refused."""
    async with rest_system() as (system, rest):
        reg = _tokens(await rest.register("ivy"))
        token, session_id = reg["access_token"], reg["session_id"]
        assert (101, "") == await _upgrade(system, token)
        stub = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
        await stub.Logout(
            auth_service_pb2.LogoutRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
        assert (401, "SESSION_REVOKED") == await _upgrade(system, token)
        namespace = revocations_namespace(system.cfg.redis_prefix)
        state = await open_hot_state(system.cfg.redis_url, namespace, embedded=system.embedded)
        try:
            if system.shape == "distributed":
                await drop_redis_prefix(system.cfg.redis_prefix)  # the whole system's keys
            else:
                await state.delete(COMPLETE_KEY, f"revoked:{session_id}")
            # Before the rebuild (readers ask the auth service) and after it (listed again).
            assert (401, "SESSION_REVOKED") == await _upgrade(system, token)
            me = await rest.call("GET", "/v1/users/me", token=token)
            assert (401, "SESSION_REVOKED") == _error(me)
            for _ in range(200):  # the auth service rebuilds within about a second
                if await state.get(f"revoked:{session_id}") is not None:
                    break
                await asyncio.sleep(0.05)
            assert b"1" == await state.get(f"revoked:{session_id}")
            assert (401, "SESSION_REVOKED") == await _upgrade(system, token)
        finally:
            await state.close()
