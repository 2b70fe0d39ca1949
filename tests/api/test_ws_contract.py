"""The WebSocket does exactly what docs/PROTOCOL.md and frames.proto say (issue 15, 10-18).

Each case is a rule an independent client, written from the docs alone, relies on: request
ids, frame size limits, error field paths and metadata, the subprotocol, and clean closes.
"""

from __future__ import annotations

import asyncio
import struct
import time
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
    ws_url,
)
from tests.api.ws_wire import OP_BINARY, OP_CLOSE, WireSocket, wire_socket
from tests.harness import System, running_system
from tgclient import RestClient

MAX_FRAME = 4096
ENV = {
    "MINITG_SESSION_CHECK_TTL_SECONDS": "0",
    "MINITG_MAX_FRAME_BYTES": str(MAX_FRAME),
    "MINITG_RATE_LOGIN": "1000/60",
    "MINITG_RATE_LOGIN_PER_IP": "1000/60",
    "MINITG_RATE_WS_UPGRADE": "1000/60",
}


@pytest.fixture
async def system(shape: str, tmp_path: Path) -> AsyncIterator[System]:
    async with running_system(shape, tmp_path, env=ENV) as running:
        yield running


async def _token(system: System) -> str:
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    return ann.access_token


def _padded_ping(request_id: int, size: int) -> bytes:
    """A Ping ClientFrame of exactly ``size`` bytes: the padding is an unknown field (15),
    which the server's decoder skips."""
    head = frames_pb2.ClientFrame(request_id=request_id, ping=frames_pb2.Ping()).SerializeToString()
    for pad in range(size, 0, -1):  # the length prefix's own size depends on the pad
        field = b"\x7a" + _varint(pad) + b"\x00" * pad  # tag 15, wire type 2
        if len(head) + len(field) == size:
            return head + field
    raise AssertionError(f"no padding makes {size} bytes")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def _closing(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], int, str]:
    """The Goodbye reasons seen until the close, the close code and the close reason."""
    reasons: list[str] = []
    while True:
        msg = await ws.receive(10)
        if msg.type == aiohttp.WSMsgType.BINARY:
            frame = frames_pb2.ServerFrame.FromString(msg.data)
            if frame.WhichOneof("payload") == "goodbye":
                reasons.append(frame.goodbye.reason)
        elif msg.type == aiohttp.WSMsgType.CLOSE:
            return reasons, int(msg.data), str(msg.extra or "")
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return reasons, int(ws.close_code or 1006), ""


async def test_ping_without_request_id_is_invalid(system: System) -> None:
    """A Ping with request_id 0 gets INVALID_FIELD (field request_id), not a Pong."""
    async with raw_socket(system, await _token(system)) as ws:
        await next_frame(ws, "hello")
        await ws.send_bytes(frames_pb2.ClientFrame(ping=frames_pb2.Ping()).SerializeToString())
        reply = frames_pb2.ServerFrame.FromString((await ws.receive(5)).data)
        assert "error" == reply.WhichOneof("payload")
        assert ("INVALID_FIELD", "request_id", 0) == (
            reply.error.reason,
            reply.error.metadata["field"],
            reply.error.request_id,
        )


async def test_frame_of_exactly_max_frame_bytes_is_accepted(system: System) -> None:
    """Hello.max_frame_bytes is inclusive: a frame of exactly that size is served."""
    async with raw_socket(system, await _token(system)) as ws:
        hello = await next_frame(ws, "hello")
        assert MAX_FRAME == hello.max_frame_bytes
        await ws.send_bytes(_padded_ping(3, MAX_FRAME))
        assert 3 == (await next_frame(ws, "pong")).request_id


async def test_oversized_frame_says_goodbye_and_why(system: System) -> None:
    """One byte over max_frame_bytes: Goodbye FRAME_TOO_LARGE, then 1009 with a reason."""
    async with raw_socket(system, await _token(system)) as ws:
        await next_frame(ws, "hello")
        await ws.send_bytes(_padded_ping(3, MAX_FRAME + 1))
        reasons, code, why = await _closing(ws)
    assert (["FRAME_TOO_LARGE"], 1009) == (reasons, code)
    assert why, "the close frame carries a reason"


@pytest.mark.parametrize(
    ("send", "field"),
    [
        (messages_pb2.SendMessage(body=chat_pb2.MessageBody(text="x")), "client_msg_id"),
        (
            messages_pb2.SendMessage(client_msg_id="m1", body=chat_pb2.MessageBody(text="  ")),
            "body.text",
        ),
    ],
)
async def test_send_errors_name_the_client_frames_field(
    system: System, send: messages_pb2.SendMessage, field: str
) -> None:
    """INVALID_FIELD on a send names the field as in the client's SendMessage, never the
    gateway's internal batch (items[0].send....)."""
    _ann, bob, chat = await direct_pair(system)
    send.chat_id = chat["id"]
    async with raw_socket(system, bob.access_token) as ws:
        await next_frame(ws, "hello")
        frame = frames_pb2.ClientFrame(request_id=4, send_message=send)
        await ws.send_bytes(frame.SerializeToString())
        error = await next_frame(ws, "error")
    assert ("INVALID_FIELD", field) == (error.reason, error.metadata["field"])
    assert "items[" not in error.message


async def test_retry_after_rides_in_its_own_field_only(shape: str, tmp_path: Path) -> None:
    """A RATE_LIMITED Error has retry_after_ms set and no copy of it in metadata."""
    env = ENV | {"MINITG_MAX_IN_FLIGHT": "1"}
    async with running_system(shape, tmp_path / "rl", env=env) as sys2:
        _ann, bob, chat = await direct_pair(sys2)
        async with raw_socket(sys2, bob.access_token) as ws:
            await next_frame(ws, "hello")
            for rid in (1, 2):  # the second arrives while the first awaits its reply
                send = messages_pb2.SendMessage(
                    chat_id=chat["id"], client_msg_id=f"m{rid}", body=chat_pb2.MessageBody(text="x")
                )
                frame = frames_pb2.ClientFrame(request_id=rid, send_message=send)
                await ws.send_bytes(frame.SerializeToString())
            error = await next_frame(ws, "error")
    assert ("RATE_LIMITED", 2, True) == (error.reason, error.request_id, error.retryable)
    assert error.retry_after_ms > 0
    assert {} == dict(error.metadata)


async def test_reused_request_id_is_reported_on_request_id_0(system: System) -> None:
    """A request id already awaiting a reply gets an Error with request_id 0 naming the id
    in metadata, so the pending request's own reply still matches it."""
    _ann, bob, chat = await direct_pair(system)
    send = messages_pb2.SendMessage(
        chat_id=chat["id"], client_msg_id="m1", body=chat_pb2.MessageBody(text="x")
    )
    frame = frames_pb2.ClientFrame(request_id=5, send_message=send).SerializeToString()
    async with raw_socket(system, bob.access_token) as ws:
        await next_frame(ws, "hello")
        await ws.send_bytes(frame)
        await ws.send_bytes(frame)
        error = await next_frame(ws, "error")
        result = await next_frame(ws, "result")
    assert (0, "INVALID_FIELD") == (error.request_id, error.reason)
    assert {"field": "request_id", "request_id": "5"} == dict(error.metadata)
    assert (5, 1) == (result.request_id, result.send_message.seq)


@pytest.mark.parametrize(("offered", "selected"), [((), None), (("minitg.v1",), "minitg.v1")])
async def test_subprotocol_minitg_v1_or_none(
    system: System, offered: tuple[str, ...], selected: str | None
) -> None:
    """A client may offer the subprotocol minitg.v1 (it is selected) or none."""
    async with raw_socket(system, await _token(system), protocols=offered) as ws:
        assert selected == ws.protocol
        assert (await next_frame(ws, "hello")).user_id


async def test_unknown_subprotocols_are_refused_with_an_http_error(system: System) -> None:
    """A client offering only subprotocols the server does not speak gets a 400 JSON error
    (reason MALFORMED_REQUEST) instead of an upgrade its library would reject."""
    headers = {
        "Authorization": f"Bearer {await _token(system)}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": "graphql-ws, minitg.v2",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{system.http_url}/v1/ws", headers=headers) as resp,
    ):
        body = await resp.json()
    assert (400, "MALFORMED_REQUEST") == (resp.status, body["error"]["code"])


async def test_sign_out_close_is_a_clean_4001_every_time(system: System) -> None:
    """Deleting a session closes its socket with Goodbye and a 4001 close frame, never an
    abnormal 1006, even while the client keeps sending (tried 30 times)."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
        seen: list[tuple[list[str], int]] = []
        for _ in range(30):
            device = await rest.login(ann.email, "password123", "phone")
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(
                    ws_url(system) + "/v1/ws",
                    headers={"Authorization": f"Bearer {device.access_token}"},
                ) as ws,
            ):
                await next_frame(ws, "hello")
                chatter = asyncio.ensure_future(_chatter(ws))
                await rest.call(
                    "DELETE", f"/v1/auth/sessions/{device.session_id}", token=ann.access_token
                )
                reasons, code, _ = await _closing(ws)
                chatter.cancel()
                seen.append((reasons, code))
    assert [(["SESSION_REVOKED"], 4001)] * 30 == seen


async def _chatter(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Keep sending what a live client sends (pings), as the close races them."""
    for rid in range(1, 10_000):
        if ws.closed:
            return
        ping = frames_pb2.ClientFrame(request_id=rid, ping=frames_pb2.Ping())
        try:
            await ws.send_bytes(ping.SerializeToString())
        except (ConnectionError, RuntimeError):
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("ended_by", ["session delete", "newer connection"])
async def test_server_close_waits_for_the_clients_close_frame(
    system: System, ended_by: str
) -> None:
    """A close the server starts completes the handshake: Goodbye, the close frame with
    its code and a reason, and the TCP connection kept until the client's close frame."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
        device = await rest.login(ann.email, "password123", "phone")
        async with wire_socket(system.http_url, device.access_token) as ws:
            assert OP_BINARY == (await ws.read_frame())[0]  # Hello
            if ended_by == "session delete":
                await rest.call(
                    "DELETE", f"/v1/auth/sessions/{device.session_id}", token=ann.access_token
                )
                reasons, code, why = await _wire_close(ws)
                expected = (["SESSION_REVOKED"], 4001)
            else:
                async with raw_socket(system, device.access_token) as newer:
                    await next_frame(newer, "hello")
                    reasons, code, why = await _wire_close(ws)
                expected = (["SESSION_REPLACED"], 4002)
            assert expected == (reasons, code)
            assert why, "the close frame carries a reason"
            assert not await ws.eof_within(0.5), "the server awaits the client's close frame"
            await ws.send(OP_CLOSE, struct.pack("!H", code))
            assert await ws.eof_within(5), "and ends the connection once it came"


async def _wire_close(ws: WireSocket) -> tuple[list[str], int, bytes]:
    """The Goodbye reasons before the server's close frame, its code and its reason."""
    reasons = []
    while True:
        opcode, payload = await ws.read_frame()
        if opcode == OP_CLOSE:
            return reasons, struct.unpack("!H", payload[:2])[0], payload[2:]
        frame = frames_pb2.ServerFrame.FromString(payload)
        if frame.WhichOneof("payload") == "goodbye":
            reasons.append(frame.goodbye.reason)


async def test_broken_framing_says_goodbye_and_why(system: System) -> None:
    """A frame breaking the WebSocket framing (compressed, none negotiated): Goodbye
    PROTOCOL_ERROR, then 1002 with a reason."""
    async with wire_socket(system.http_url, await _token(system)) as ws:
        assert OP_BINARY == (await ws.read_frame())[0]  # Hello
        await ws.send(0x40 | OP_BINARY, b"\x08\x01")  # RSV1: permessage-deflate, not agreed
        reasons, code, why = await _wire_close(ws)
    assert (["PROTOCOL_ERROR"], 1002) == (reasons, code)
    assert why, "the close frame carries a reason"


async def test_reference_client_offers_minitg_v1(system: System) -> None:
    """tgclient offers the subprotocol minitg.v1, and the server selects it."""
    async with RestClient(system.http_url) as rest:
        (ann,) = await accounts(rest, "ann")
    async with clients(system, ann) as (a,):
        assert a._ws is not None
        assert "minitg.v1" == a._ws.protocol


async def test_expired_token_closes_with_4003_after_the_skew_grace(
    shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past token_expires_at_ms the socket still serves for the clock-skew grace (30 s,
    shortened here), then gets Goodbye TOKEN_EXPIRED and 4003."""
    from gateway import ws_maintenance

    monkeypatch.setattr(ws_maintenance, "EXPIRY_LEEWAY", 3.0)
    env = ENV | {"MINITG_ACCESS_TOKEN_TTL_SECONDS": "1", "MINITG_HEARTBEAT_SECONDS": "0.3"}
    async with running_system(shape, tmp_path / "exp", env=env) as sys2:
        token = await _token(sys2)
        async with raw_socket(sys2, token) as ws:
            hello = await next_frame(ws, "hello")
            rid = 0
            while time.time() * 1000 < hello.token_expires_at_ms + 300:  # pings keep it busy
                rid += 1
                ping = frames_pb2.ClientFrame(request_id=rid, ping=frames_pb2.Ping())
                await ws.send_bytes(ping.SerializeToString())
                assert rid == (await next_frame(ws, "pong")).request_id
                await asyncio.sleep(0.05)
            # The last pong came after the token's expiry: the socket served on in the grace.
            reasons, code, _ = await _closing(ws)
    assert (["TOKEN_EXPIRED"], 4003) == (reasons, code)


async def test_a_server_bug_on_a_frame_closes_with_1011(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error handling a frame: Goodbye INTERNAL, then 1011 with a reason."""
    from gateway.ws_dispatch import Dispatcher

    def broken(*_args: object) -> None:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(Dispatcher, "accept", broken)
    async with raw_socket(system, await _token(system)) as ws:
        await next_frame(ws, "hello")
        ping = frames_pb2.ClientFrame(request_id=7, ping=frames_pb2.Ping())
        await ws.send_bytes(ping.SerializeToString())
        reasons, code, why = await _closing(ws)
    assert (["INTERNAL"], 1011) == (reasons, code)
    assert why, "the close frame carries a reason"
