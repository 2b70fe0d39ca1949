"""The WebSocket protocol's edges: authentication, bad input, floods, session lifecycle.

Every case is tried against a live in-process system, and afterwards the gateway still
serves a fresh connection: bad input never takes anything else down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from minitg.chat.v1 import chat_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2

from tests.api.ws_support import (
    accounts,
    clients,
    direct_pair,
    next_frame,
    raw_socket,
    server_frames,
)
from tests.harness import System, running_system
from tgclient import RestClient

ENV = {
    "MINITG_SESSION_CHECK_TTL_SECONDS": "0",
    "MINITG_MAX_FRAME_BYTES": "4096",
    "MINITG_ALLOWED_ORIGINS": "https://app.example.org",
}


@pytest.fixture
async def system(shape: str, tmp_path: Path) -> AsyncIterator[System]:
    async with running_system(shape, tmp_path, env=ENV) as running:
        yield running


async def _still_serves(system: System, token: str) -> None:
    async with raw_socket(system, token) as ws:
        assert (await next_frame(ws, "hello")).session_id
        ping = frames_pb2.ClientFrame(request_id=9, ping=frames_pb2.Ping())
        await ws.send_bytes(ping.SerializeToString())
        assert 9 == (await next_frame(ws, "pong")).request_id


async def test_hello_first(system: System) -> None:
    """The first frame is Hello with the session, user, limits and state."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    async with raw_socket(system, ann.access_token) as ws:
        msg = await ws.receive(5)
        frame = frames_pb2.ServerFrame.FromString(msg.data)
        assert "hello" == frame.WhichOneof("payload")
        hello = frame.hello
        assert (ann.session_id, ann.user_id) == (hello.session_id, hello.user_id)
        assert (4096, 30_000) == (hello.max_frame_bytes, hello.heartbeat_interval_ms)
        assert hello.token_expires_at_ms > hello.server_time_ms


@pytest.mark.parametrize(
    ("headers", "query", "status", "code"),
    [
        ({}, "", 401, "TOKEN_MISSING"),
        ({"Authorization": "Bearer not-a-jwt"}, "", 401, "TOKEN_INVALID"),
        ({"Authorization": "Basic eDp5"}, "", 401, "TOKEN_INVALID"),
        ({}, "?access_token=garbage", 401, "TOKEN_INVALID"),
    ],
)
async def test_upgrade_refused_without_valid_token(
    system: System, headers: dict[str, str], query: str, status: int, code: str
) -> None:
    """A bad or missing token is an HTTP JSON error before any socket opens."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{system.http_url}/v1/ws{query}", headers=headers | _upgrade_headers()) as resp,
    ):
        body = await resp.json()
        assert (status, code) == (resp.status, body["error"]["code"])


def _upgrade_headers() -> dict[str, str]:
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


async def test_browser_token_in_query_and_origin_allowlist(system: System) -> None:
    """Browsers use ?access_token=; an unlisted Origin is 403, a listed one connects."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    query = f"?access_token={ann.access_token}"
    async with aiohttp.ClientSession() as http:
        evil = {"Origin": "https://evil.example.com"} | _upgrade_headers()
        async with http.get(f"{system.http_url}/v1/ws{query}", headers=evil) as resp:
            assert (403, "PERMISSION_DENIED") == (resp.status, (await resp.json())["error"]["code"])
        url = system.http_url.replace("http", "ws") + "/v1/ws" + query
        async with http.ws_connect(url, headers={"Origin": "https://app.example.org"}) as ws:
            assert (await next_frame(ws, "hello")).user_id == ann.user_id


@pytest.mark.parametrize(
    ("send", "code"),
    [
        ("text", 1003),
        ("garbage", 1007),
        ("too large", 1009),
    ],
)
async def test_bad_frames_close_with_documented_codes(system: System, send: str, code: int) -> None:
    """Text frames (1003), undecodable frames (1007), oversized frames (1009) end the socket."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    async with raw_socket(system, ann.access_token) as ws:
        await next_frame(ws, "hello")
        if send == "text":
            await ws.send_str("hello?")
        elif send == "garbage":
            await ws.send_bytes(b"\xff\xff\xff\xff\xff")
        else:
            await ws.send_bytes(b"\x00" * 5000)
        _, closed_with = await server_frames(ws)
        assert code == closed_with
    await _still_serves(system, ann.access_token)


async def test_request_errors_keep_the_socket_open(system: System) -> None:
    """Unknown payloads, missing or duplicate request ids and service errors are Error frames."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    async with raw_socket(system, ann.access_token) as ws:
        await next_frame(ws, "hello")
        await ws.send_bytes(frames_pb2.ClientFrame(request_id=5).SerializeToString())
        assert ("UNKNOWN_FRAME", 5) == _reason(await next_frame(ws, "error"))
        send = messages_pb2.SendMessage(
            chat_id=1, client_msg_id="m1", body=chat_pb2.MessageBody(text="x")
        )
        await ws.send_bytes(
            frames_pb2.ClientFrame(request_id=0, send_message=send).SerializeToString()
        )
        error = await next_frame(ws, "error")
        assert ("INVALID_FIELD", "request_id") == (error.reason, error.metadata["field"])
        nowhere = frames_pb2.ClientFrame(request_id=7, send_message=send)
        await ws.send_bytes(nowhere.SerializeToString())
        assert ("CHAT_NOT_FOUND", 7) == _reason(await next_frame(ws, "error"))
        ping = frames_pb2.ClientFrame(request_id=8, ping=frames_pb2.Ping())
        await ws.send_bytes(ping.SerializeToString())
        assert 8 == (await next_frame(ws, "pong")).request_id


async def test_bad_unanswered_acks_are_dropped_and_the_socket_keeps_serving(
    system: System,
) -> None:
    """Delivered-acks with request id 0 get no reply, so bad ones (a negative max_pts, a
    chat id 0) are dropped by presence without an Error frame; the same ack with a
    request id is answered INVALID_FIELD, and the socket keeps serving."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    bad = [
        messages_pb2.AckUpdates(max_pts=-1),
        messages_pb2.AckUpdates(max_pts=1, chats=[messages_pb2.ChatReceived(chat_id=0, max_seq=1)]),
    ]
    async with raw_socket(system, ann.access_token) as ws:
        await next_frame(ws, "hello")
        for ack in bad:
            frame = frames_pb2.ClientFrame(request_id=0, ack_updates=ack)
            await ws.send_bytes(frame.SerializeToString())
        await asyncio.sleep(0.3)  # the posted batch has gone to presence and come back
        answered = frames_pb2.ClientFrame(request_id=9, ack_updates=bad[0])
        await ws.send_bytes(answered.SerializeToString())
        reply = frames_pb2.ServerFrame.FromString((await ws.receive(5)).data)
        assert ("INVALID_FIELD", 9) == _reason(reply.error)  # nothing came before it
        ping = frames_pb2.ClientFrame(request_id=8, ping=frames_pb2.Ping())
        await ws.send_bytes(ping.SerializeToString())
        assert 8 == (await next_frame(ws, "pong")).request_id


def _reason(error: frames_pb2.Error) -> tuple[str, int]:
    return error.reason, error.request_id


async def test_flood_is_closed_with_4008(system: System) -> None:
    """A client sending frames far above the allowed rate is disconnected with 4008."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    async with raw_socket(system, ann.access_token) as ws:
        await next_frame(ws, "hello")
        ping = frames_pb2.ClientFrame(request_id=0, ping=frames_pb2.Ping()).SerializeToString()
        for _ in range(2000):
            if ws.closed:
                break
            await ws.send_bytes(ping)
        frames, closed_with = await server_frames(ws)
        assert 4008 == closed_with
        goodbyes = [f.goodbye for f in frames if f.WhichOneof("payload") == "goodbye"]
        assert ["RATE_LIMITED"] == [g.reason for g in goodbyes]
    await _still_serves(system, ann.access_token)


async def test_second_connection_of_a_session_replaces_the_first(system: System) -> None:
    """A new socket with the same session closes the older one with 4002."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    async with raw_socket(system, ann.access_token) as old:
        await next_frame(old, "hello")
        async with raw_socket(system, ann.access_token) as new:
            await next_frame(new, "hello")
            _, closed_with = await server_frames(old)
            assert 4002 == closed_with
            assert not new.closed


async def test_logout_closes_the_sessions_socket(system: System) -> None:
    """Logging out closes that session's socket with 4001; other sessions stay."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
        other = await rest.login(ann.email, "password123", "tablet")
        async with (
            raw_socket(system, ann.access_token) as ws,
            raw_socket(system, other.access_token) as keep,
        ):
            await next_frame(ws, "hello")
            await next_frame(keep, "hello")
            await rest.call("POST", "/v1/auth/logout", token=ann.access_token)
            _, closed_with = await server_frames(ws)
            assert 4001 == closed_with
            assert not keep.closed


async def test_upgrades_are_rate_limited_per_user(
    system: System, shape: str, tmp_path: Path
) -> None:
    """Past MINITG_RATE_WS_UPGRADE the upgrade is 429 with Retry-After."""
    async with running_system(
        shape, tmp_path / "rl", env=ENV | {"MINITG_RATE_WS_UPGRADE": "2/60"}
    ) as sys2:
        async with RestClient(sys2.http_url) as rest:
            (ann,) = await accounts(rest, "ann")
        for _ in range(2):
            async with raw_socket(sys2, ann.access_token) as ws:
                await next_frame(ws, "hello")
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {ann.access_token}"} | _upgrade_headers()
            async with http.get(f"{sys2.http_url}/v1/ws", headers=headers) as resp:
                assert (429, "RATE_LIMITED") == (resp.status, (await resp.json())["error"]["code"])
                assert int(resp.headers["Retry-After"]) >= 1


async def test_direct_message_round_trip(system: System) -> None:
    """A sends, gets its ack after commit; B gets the update once with its own pts."""
    ann, bob, chat = await direct_pair(system)
    async with clients(system, ann, bob) as (a, b):
        ack = await a.send_text(chat["id"], "hello bob")
        assert (1, 1) == (ack.seq, ack.pts_count)
        update = await b.next_update()
        assert "hello bob" == update.new_message.message.body.text
        assert (ack.message_id, 1) == (
            update.new_message.message.id,
            update.new_message.unread_count,
        )
        assert update.pts == b.pts


async def test_dead_connection_is_dropped(shape: str, tmp_path: Path) -> None:
    """A peer that answers no ping is closed with 4000 and unregistered; others are kept."""
    from svckit import metrics

    env = ENV | {"MINITG_HEARTBEAT_SECONDS": "0.4"}
    async with running_system(shape, tmp_path / "hb", env=env) as sys2:
        async with RestClient(sys2.http_url) as rest:
            ann, bob = await accounts(rest, "ann", "bob")
        async with (
            raw_socket(sys2, ann.access_token, autoping=False) as dead,
            raw_socket(sys2, bob.access_token) as alive,  # answers pings by itself
        ):
            await next_frame(dead, "hello")
            await next_frame(alive, "hello")
            assert 2 == metrics.WS_CONNECTIONS._value.get()
            reader = asyncio.ensure_future(server_frames(alive, timeout=30))  # pongs as it reads
            _, code = await server_frames(dead, timeout=10)  # we never pong
            assert 4000 == code
            await asyncio.sleep(1.0)
            assert not alive.closed and not reader.done()
            reader.cancel()
            assert 1 == metrics.WS_CONNECTIONS._value.get()
        await _still_serves(sys2, ann.access_token)


async def test_shutdown_says_goodbye_with_1001(shape: str, tmp_path: Path) -> None:
    """A stopping gateway sends Goodbye (reconnect_after_ms) and closes with 1001."""
    async with running_system(shape, tmp_path / "down", env=ENV) as sys2:
        async with RestClient(sys2.http_url) as rest:
            (ann,) = await accounts(rest, "ann")
        async with raw_socket(sys2, ann.access_token) as ws:
            await next_frame(ws, "hello")
            gateway = sys2.roles["gateway"]
            gateway.drain()
            stopping = asyncio.ensure_future(gateway.stop(2.0))
            frames, code = await server_frames(ws)
            await stopping
        goodbyes = [f.goodbye for f in frames if f.WhichOneof("payload") == "goodbye"]
        assert 1001 == code
        assert ["SERVER_SHUTTING_DOWN"] == [g.reason for g in goodbyes]
        assert 0 < goodbyes[0].reconnect_after_ms <= 5000


async def test_overload_sheds_sends_with_rate_limited(shape: str, tmp_path: Path) -> None:
    """Past the pod's in-flight send bound, sends are refused at once, retryably."""
    from tgclient.errors import RequestFailed

    env = ENV | {"MINITG_MAX_SENDS_IN_FLIGHT": "1"}
    async with running_system(shape, tmp_path / "shed", env=env) as sys2:
        ann, _bob, chat = await direct_pair(sys2)
        async with clients(sys2, ann) as (a,):
            sends = [a.request("send_message", _send(chat["id"], f"m{i}")) for i in range(10)]
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
        shed = [o for o in outcomes if isinstance(o, RequestFailed)]
        assert shed, "some sends were refused"
        assert {("RATE_LIMITED", True)} == {(o.reason, o.retryable) for o in shed}
        assert any(not isinstance(o, BaseException) for o in outcomes), "and some went through"


def _send(chat_id: int, text: str) -> messages_pb2.SendMessage:
    return messages_pb2.SendMessage(
        chat_id=chat_id, client_msg_id=f"shed-{text}", body=chat_pb2.MessageBody(text=text)
    )
