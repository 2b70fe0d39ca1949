"""The gateway's listening sockets: several accept queues on one port, never a shared port."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from gateway.listen import listen


async def _hello(_: web.Request) -> web.Response:
    return web.Response(text="hi")


async def _runner() -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


async def test_one_port_several_accept_queues() -> None:
    runner = await _runner()
    try:
        port = await listen(runner, "127.0.0.1", 0, listeners=3)
        assert [port] * 3 == [address[1] for address in runner.addresses]
        async with aiohttp.ClientSession() as http:
            for _ in range(6):
                async with http.get(f"http://127.0.0.1:{port}/") as response:
                    assert "hi" == await response.text()
    finally:
        await runner.cleanup()


async def test_a_port_in_use_is_refused() -> None:
    first, second = await _runner(), await _runner()
    try:
        port = await listen(first, "127.0.0.1", 0, listeners=2)
        with pytest.raises(OSError):
            await listen(second, "127.0.0.1", port, listeners=2)
    finally:
        await first.cleanup()
        await second.cleanup()
