"""tgclient against a scripted gateway on a real socket: a Hello without state (the chat
service did not answer in time) makes a fresh device ask GetState and hold the updates that
arrive meanwhile, instead of starting from pts 0 and fetching its whole history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from minitg.chat.v1 import chat_pb2, updates_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2

from tgclient import MinitgClient

STATE_PTS = 40


def new_message(pts: int, text: str) -> updates_pb2.Update:
    message = chat_pb2.Message(chat_id=1, seq=pts, body=chat_pb2.MessageBody(text=text))
    return updates_pb2.Update(
        pts=pts, pts_count=1, new_message=updates_pb2.NewMessage(message=message)
    )


class ScriptedGateway:
    """Hello without state; before answering GetState it pushes an old update (pts 40,
    already covered by the state) and a new one (pts 41); GetDifference is never expected."""

    def __init__(self, failures: int = 0) -> None:
        self.requests: list[str] = []
        self.failures = failures  # GetState calls to refuse first, as a busy server would

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(
            frames_pb2.ServerFrame(hello=frames_pb2.Hello(user_id=7)).SerializeToString()
        )
        async for msg in ws:
            frame = frames_pb2.ClientFrame.FromString(msg.data)
            kind = frame.WhichOneof("payload")
            self.requests.append(str(kind))
            if kind != "get_state":
                continue
            if self.failures:
                self.failures -= 1
                busy = frames_pb2.Error(
                    request_id=frame.request_id, reason="UNAVAILABLE", retryable=True
                )
                await ws.send_bytes(frames_pb2.ServerFrame(error=busy).SerializeToString())
                continue
            for update in (new_message(STATE_PTS, "old"), new_message(STATE_PTS + 1, "new")):
                await ws.send_bytes(frames_pb2.ServerFrame(update=update).SerializeToString())
            await asyncio.sleep(0.05)
            state = messages_pb2.GetStateResult(state=updates_pb2.State(pts=STATE_PTS))
            result = frames_pb2.Result(request_id=frame.request_id, get_state=state)
            await ws.send_bytes(frames_pb2.ServerFrame(result=result).SerializeToString())
        return ws


@pytest_asyncio.fixture(params=[0, 2], ids=["answered", "busy-twice"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ScriptedGateway, str]]:
    script = ScriptedGateway(failures=request.param)
    app = web.Application()
    app.router.add_get("/v1/ws", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield script, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_hello_without_state_asks_get_state_and_holds_early_updates(
    gateway: tuple[ScriptedGateway, str],
) -> None:
    script, url = gateway
    client = MinitgClient(url, "token", gap_grace=0.05)
    await client.connect()
    try:
        update = await client.next_update(timeout=2)
        assert ("new", STATE_PTS + 1) == (update.new_message.message.body.text, client.pts)
        await asyncio.sleep(0.2)
        assert client.updates.empty(), "the update the state already covers is not applied"
        assert "get_difference" not in script.requests
        assert "get_state" in script.requests
        assert 0 == script.failures, "a refused GetState is asked again"
    finally:
        await client.close()
