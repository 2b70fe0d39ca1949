"""The control: a minimal aiohttp WebSocket fan-out server speaking minitg's frames.

No auth (the bearer token *is* the user id), no persistence, no broker, no gRPC: a send
is answered with a Result and pushed as an Update (with a correct per-user pts) to the
other members' sockets, all in memory in one process. The generator drives it exactly as
it drives minitg, so a report can say what fraction of raw aiohttp we achieve.

    python -m load.control --port 8099
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import defaultdict
from typing import Any

from aiohttp import WSMsgType, web
from minitg.chat.v1 import chat_pb2, updates_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2

from load.procstat import raise_nofile
from svckit.reasons import Reason


class FanOut:
    """Chats, per-user pts and per-chat seq, and the open sockets by user id."""

    def __init__(self) -> None:
        self.members: dict[int, list[int]] = {}
        self.seq: dict[int, int] = defaultdict(int)
        self.pts: dict[int, int] = defaultdict(int)
        self.sockets: dict[int, web.WebSocketResponse] = {}
        self.ids = itertools.count(1)
        self.pushes: set[asyncio.Task[None]] = set()

    def create(self, member_lists: list[list[int]]) -> list[int]:
        ids = []
        for members in member_lists:
            chat_id = next(self.ids)
            self.members[chat_id] = list(members)
            ids.append(chat_id)
        return ids

    def send(self, sender: int, rid: int, request: messages_pb2.SendMessage) -> bytes:
        """Commit in memory, push to the other members, return the sender's Result frame."""
        chat_id = request.chat_id
        self.seq[chat_id] += 1
        message = chat_pb2.Message(
            id=next(self.ids), chat_id=chat_id, seq=self.seq[chat_id], sender_user_id=sender,
            date_ms=int(time.time() * 1000), body=request.body,
        )  # fmt: skip
        for member in self.members.get(chat_id, ()):
            self.pts[member] += 1
            if member == sender:
                continue
            ws = self.sockets.get(member)
            if ws is not None and not ws.closed:
                update = updates_pb2.Update(
                    pts=self.pts[member], pts_count=1, date_ms=message.date_ms,
                    new_message=updates_pb2.NewMessage(message=message),
                )  # fmt: skip
                self._push(ws, frames_pb2.ServerFrame(update=update).SerializeToString())
        reply = messages_pb2.SendMessageResult(
            message_id=message.id, seq=message.seq, date_ms=message.date_ms,
            pts=self.pts[sender], pts_count=1,
        )  # fmt: skip
        result = frames_pb2.Result(request_id=rid, send_message=reply)
        return frames_pb2.ServerFrame(result=result).SerializeToString()

    def _push(self, ws: web.WebSocketResponse, data: bytes) -> None:
        """Fire-and-forget send (the transport buffers the write); tasks kept referenced."""
        task = asyncio.get_running_loop().create_task(ws.send_bytes(data))
        self.pushes.add(task)
        task.add_done_callback(self.pushes.discard)


FANOUT = web.AppKey("fanout", FanOut)


async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[FANOUT]
    user_id = int(request.headers.get("Authorization", "Bearer 0").partition(" ")[2] or 0)
    ws = web.WebSocketResponse(max_msg_size=64 * 1024, compress=False)
    await ws.prepare(request)
    hub.sockets[user_id] = ws
    hello = frames_pb2.Hello(
        user_id=user_id, state=updates_pb2.State(pts=hub.pts[user_id]), protocol="minitg.v1"
    )
    await ws.send_bytes(frames_pb2.ServerFrame(hello=hello).SerializeToString())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                break
            frame = frames_pb2.ClientFrame()
            frame.ParseFromString(msg.data)
            reply = _answer(hub, user_id, frame)
            if reply is not None:
                await ws.send_bytes(reply)
    finally:
        if hub.sockets.get(user_id) is ws:
            del hub.sockets[user_id]
    return ws


def _answer(hub: FanOut, user_id: int, frame: frames_pb2.ClientFrame) -> bytes | None:
    kind = frame.WhichOneof("payload")
    rid = frame.request_id
    out: Any
    if kind == "send_message":
        return hub.send(user_id, rid, frame.send_message)
    if kind == "ack_updates" or (kind == "set_typing" and rid == 0):
        return None
    if kind == "ping":
        out = frames_pb2.ServerFrame(pong=frames_pb2.Pong(request_id=rid))
    elif kind == "get_difference":
        diff = messages_pb2.GetDifferenceResult(
            status=messages_pb2.DIFFERENCE_STATUS_COMPLETE,
            state=updates_pb2.State(pts=hub.pts[user_id]),
        )
        out = frames_pb2.ServerFrame(result=frames_pb2.Result(request_id=rid, get_difference=diff))
    else:
        error = frames_pb2.Error(request_id=rid, reason=Reason.UNKNOWN_FRAME, message=str(kind))
        out = frames_pb2.ServerFrame(error=error)
    return bytes(out.SerializeToString())


async def create_chats(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"ids": request.app[FANOUT].create(body["chats"])})


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app[FANOUT] = FanOut()
    app.router.add_get("/v1/ws", websocket)
    app.router.add_post("/chats", create_chats)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_nofile()
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(create_app(), host="127.0.0.1", port=args.port, print=None, loop=loop)


if __name__ == "__main__":
    main()
