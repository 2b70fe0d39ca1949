"""A gateway Connection's output on a real loopback WebSocket: order, back-pressure, 1013.

Frames are written as they are pushed and wait only while the Hello is not out yet or the
transport is paused; these tests drive both waits with a client that does not read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from minitg.gateway.v1 import frames_pb2

from gateway.ws_hub import OUTBOX_FRAMES, CloseCode, Connection
from svckit.authn import Principal

Script = Callable[[Connection], Awaitable[None]]


@asynccontextmanager
async def served(script: Script) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A one-route server running ``script`` on each new Connection, and a client socket."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        conn = Connection(ws, Principal(1, "session-1", "token"), 0.0)
        await script(conn)
        async for _ in ws:
            pass
        await conn.stop_writer()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{port}/", max_msg_size=0) as ws,
        ):
            yield ws
    finally:
        await runner.cleanup()


def numbered(i: int, size: int) -> bytes:
    return i.to_bytes(4, "big") + bytes(size - 4)


async def test_frames_pushed_before_the_hello_follow_it_in_order() -> None:
    async def script(conn: Connection) -> None:
        conn.push(b"first")
        conn.push(b"second")
        conn.start(b"hello")
        conn.push(b"third")

    async with served(script) as ws:
        got = [(await ws.receive(timeout=5)).data for _ in range(4)]
    assert [b"hello", b"first", b"second", b"third"] == got


async def test_a_paused_transport_delays_frames_but_keeps_them_in_order() -> None:
    pushed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    frames = 60

    async def script(conn: Connection) -> None:
        conn.start(b"hello")
        for i in range(frames):  # 60 MB: far beyond the socket buffers, so writes queue
            conn.push(numbered(i, 1 << 20))
        pushed.set_result(conn._writer is not None and not conn.closing)

    async with served(script) as ws:
        assert await asyncio.wait_for(pushed, 10), "the transport never paused"
        assert b"hello" == (await ws.receive(timeout=5)).data
        got = [int.from_bytes((await ws.receive(timeout=5)).data[:4], "big") for _ in range(frames)]
    assert list(range(frames)) == got


async def test_a_client_that_stops_reading_is_closed_with_1013() -> None:
    closing: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def script(conn: Connection) -> None:
        conn.start(b"hello")
        sent = 0
        while not conn.closing and sent < 20 * OUTBOX_FRAMES:
            conn.push(numbered(sent, 16 << 10))
            sent += 1
            if sent % 100 == 0:
                await asyncio.sleep(0)  # the close a full backlog schedules may begin
        closing.set_result(sent)

    async with served(script) as ws:
        sent = await asyncio.wait_for(closing, 10)
        assert sent < 20 * OUTBOX_FRAMES, "the backlog was never bounded"
        assert b"hello" == (await ws.receive(timeout=5)).data
        seen = []
        while (msg := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.BINARY:
            if len(msg.data) != 16 << 10:
                goodbye = frames_pb2.ServerFrame.FromString(msg.data).goodbye
                continue
            seen.append(int.from_bytes(msg.data[:4], "big"))
    assert list(range(len(seen))) == seen  # a prefix, in order; the backlog was dropped
    assert len(seen) < sent
    assert "TRY_AGAIN_LATER" == goodbye.reason
    assert aiohttp.WSMsgType.CLOSE == msg.type
    assert CloseCode.CLOSE_CODE_TRY_AGAIN_LATER == msg.data
