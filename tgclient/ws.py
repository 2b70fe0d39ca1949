"""The WebSocket half of the reference client: the socket, requests and replies, reconnects.

The typed requests are in ``tgclient.calls``, keeping in step with the update log (the pts
rule, gaps, catch-up, state) in ``tgclient.sync``. The rules it follows are the ones
docs/PROTOCOL.md gives client authors:

* Requests carry a request id; each gets one Result or Error (GetDifference: one Result
  per chunk until a chunk with a final status).
* An update with ``pts == 0`` is applied as it comes. Otherwise it is applied only when
  ``local_pts + pts_count == pts``; one with ``pts <= local_pts`` is a duplicate and
  dropped; a higher one means a gap: it is held back, and if the gap is still open after
  half a second (usually the missing update is merely still on its way), GetDifference
  fills it.
* On connect with a known pts the client catches up with GetDifference; live updates that
  arrive meanwhile are held back and merged, so nothing falls between the two.
* Sends reuse their ``client_msg_id`` when retried, so a retry never makes a second message.
* A reply that carries ``pts``/``pts_count`` (send, read, edit, delete) advances the local
  pts like the update it stands for: the acting device gets no push of its own action. A
  reply ahead of a gap waits, like a held update, until the updates before it arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Sequence
from typing import Any

import aiohttp
from minitg.chat.v1 import updates_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2

from tgclient.errors import ConnectionClosed, RequestFailed
from tgclient.pts import PtsState
from tgclient.sync import GAP_GRACE_SECONDS, UpdateSync

# The WebSocket subprotocol offered on connect (docs/PROTOCOL.md: minitg.v1 or none).
SUBPROTOCOL = "minitg.v1"
# Close codes after which reconnecting would be wrong (see docs/PROTOCOL.md).
NO_RECONNECT = {1000, 4001, 4002}

FINAL = {
    messages_pb2.DIFFERENCE_STATUS_COMPLETE,
    messages_pb2.DIFFERENCE_STATUS_SLICE,
    messages_pb2.DIFFERENCE_STATUS_TOO_LONG,
}


class MinitgClient(UpdateSync):
    """One device's connection. ``pts`` is the device's update-log position."""

    def __init__(
        self,
        url: str | Sequence[str],
        access_token: str,
        *,
        pts: int | None = None,
        ack_interval: float = 0.2,
        auto_reconnect: bool = False,
        gap_grace: float = GAP_GRACE_SECONDS,
    ) -> None:
        bases = [url] if isinstance(url, str) else list(url)
        self._urls = [base.rstrip("/") + "/v1/ws" for base in bases]
        self._url_index = 0
        self.auto_reconnect = auto_reconnect
        self.reconnects = 0
        self.access_token = access_token
        self._known_pts = pts is not None
        self._state = PtsState(pts or 0)
        self.hello: frames_pb2.Hello | None = None
        self.updates: asyncio.Queue[updates_pb2.Update] = asyncio.Queue()
        self.events: asyncio.Queue[frames_pb2.ServerFrame] = asyncio.Queue()
        self.goodbye: frames_pb2.Goodbye | None = None
        self.close_code: int | None = None  # set when the server closed the socket
        self.too_long = False  # the log was trimmed past our pts: refetch chats and history
        self._ack_interval, self._gap_grace = ack_interval, gap_grace
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], list[Any]]] = {}
        self._delivered: dict[int, int] = {}  # chat -> max seq received, for the next ack
        self._acked_pts = 0
        self._catching_up: asyncio.Task[None] | None = None
        self._gap_seen = False  # a gap was found that no GetDifference has covered yet
        self._early: list[updates_pb2.Update] | None = None  # updates before our pts is known
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnector: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MinitgClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The WebSocket URL in use (the first of the given gateways that answered)."""
        return self._urls[self._url_index]

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        """Connect to the current gateway, or the next ones in turn when it is down."""
        self._session = self._session or aiohttp.ClientSession()
        error: Exception | None = None
        for step in range(len(self._urls)):
            index = (self._url_index + step) % len(self._urls)
            try:
                ws = await self._session.ws_connect(
                    self._urls[index],
                    headers={"Authorization": f"Bearer {self.access_token}"},
                    protocols=(SUBPROTOCOL,),
                    max_msg_size=0,
                )
            except (aiohttp.ClientError, OSError) as exc:
                error = exc
                continue
            self._url_index = index
            return ws
        raise ConnectionClosed(1006, f"no gateway answered: {error!r}")

    async def connect(self) -> frames_pb2.Hello:
        """Open the socket, read Hello, then catch up from ``pts`` when we have one."""
        self._ws = await self._open()
        first = await self._ws.receive()
        frame = _decode(first)
        if frame is None or frame.WhichOneof("payload") != "hello":
            raise ConnectionClosed(self._ws.close_code or 1002, "no Hello")
        self.hello = frame.hello
        known_pts = self._known_pts
        if not self._known_pts and self.hello.HasField("state"):
            self._state.pts, self._known_pts = self.hello.state.pts, True
        elif not self._known_pts:
            self._early = []  # no state in Hello: hold updates until GetState answers
        self._tasks = [
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._ack_loop()),
        ]
        if known_pts:
            await self.catch_up()
        elif not self._known_pts:
            await self._learn_state()
        return self.hello

    async def close(self) -> None:
        self.auto_reconnect = False
        if self._reconnector is not None:
            self._reconnector.cancel()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._fail_pending(ConnectionClosed(1000, "closed by client"))

    async def reconnect(self) -> frames_pb2.Hello:
        """Drop the current socket and connect again, catching up from our pts."""
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        self._fail_pending(ConnectionClosed(1006, "reconnecting"))
        self.goodbye = None
        return await self.connect()

    async def _reconnected(self) -> None:
        """Wait for the automatic reconnect, or reconnect now when there is none."""
        reconnector = self._reconnector
        if self.auto_reconnect and reconnector is not None and not reconnector.done():
            with contextlib.suppress(Exception):
                await reconnector
            if not self.closed:
                return
        await self.reconnect()

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed

    # -- requests ---------------------------------------------------------------------

    async def request(self, kind: str, message: Any, *, timeout: float = 30) -> Any:
        """Send one request frame and wait for its reply payload (list for get_difference)."""
        if self._ws is None or self._ws.closed:
            code = self._ws.close_code if self._ws is not None else None
            raise ConnectionClosed(code or 1006, "not connected")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (future, [])
        frame = frames_pb2.ClientFrame(request_id=rid, **{kind: message})
        try:
            await self._ws.send_bytes(frame.SerializeToString())
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(rid, None)
        self._advance(reply)
        return reply

    async def next_event(self, timeout: float = 10) -> frames_pb2.ServerFrame:
        return await asyncio.wait_for(self.events.get(), timeout)

    # -- incoming ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._ws is not None
        code = 1006
        while True:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                code = int(msg.data)  # the server's code, even if the TCP close races ours
                break
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                code = int(self._ws.close_code or 1006)
                break
            frame = _decode(msg)
            if frame is not None:
                self._dispatch(frame)
        self.close_code = code
        self._fail_pending(ConnectionClosed(code, _reason(self.goodbye)))
        if self.auto_reconnect and code not in NO_RECONNECT:
            self._reconnector = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self, attempts: int = 20) -> None:
        """Backoff with jitter (honouring Goodbye.reconnect_after_ms), then catch up."""
        delay = max(0.2, (self.goodbye.reconnect_after_ms / 1000) if self.goodbye else 0.2)
        for _ in range(attempts):
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            try:
                await self.reconnect()
                self.reconnects += 1
                return
            except (TimeoutError, ConnectionClosed, RequestFailed, OSError):
                delay = min(delay * 2, 5.0)

    def _dispatch(self, frame: frames_pb2.ServerFrame) -> None:
        kind = frame.WhichOneof("payload")
        if kind == "result":
            self._resolve(frame.result)
        elif kind == "error":
            self._reject(frame.error)
        elif kind == "pong":
            self._settle(frame.pong.request_id, frame.pong)
        elif kind == "update":
            self._offer(frame.update)
        elif kind == "goodbye":
            self.goodbye = frame.goodbye
        elif kind is not None:
            self.events.put_nowait(frame)

    def _resolve(self, result: frames_pb2.Result) -> None:
        entry = self._pending.get(result.request_id)
        kind = result.WhichOneof("response")
        if entry is None or kind is None:
            return
        payload = getattr(result, kind)
        if kind == "get_difference":
            entry[1].append(payload)
            if payload.status in FINAL:
                self._settle(result.request_id, list(entry[1]))
            return
        self._settle(result.request_id, payload)

    def _settle(self, rid: int, value: Any) -> None:
        entry = self._pending.get(rid)
        if entry is not None and not entry[0].done():
            entry[0].set_result(value)

    def _reject(self, error: frames_pb2.Error) -> None:
        entry = self._pending.get(error.request_id)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(
                RequestFailed(
                    error.reason,
                    error.message,
                    retry_after_ms=error.retry_after_ms,
                    retryable=error.retryable,
                    metadata=dict(error.metadata),
                )
            )

    def _fail_pending(self, exc: Exception) -> None:
        for future, _ in list(self._pending.values()):
            if not future.done():
                future.set_exception(exc)

    async def _ack_loop(self) -> None:
        """Acknowledge received updates (delivered receipts), fire and forget."""
        while True:
            await asyncio.sleep(self._ack_interval)
            if self._ws is None or self._ws.closed or self.pts <= self._acked_pts:
                continue
            chats = [
                messages_pb2.ChatReceived(chat_id=c, max_seq=s) for c, s in self._delivered.items()
            ]
            self._delivered.clear()
            ack = messages_pb2.AckUpdates(max_pts=self.pts, chats=chats[:100])
            frame = frames_pb2.ClientFrame(request_id=0, ack_updates=ack)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_bytes(frame.SerializeToString())
                self._acked_pts = self.pts


def _decode(msg: aiohttp.WSMessage) -> frames_pb2.ServerFrame | None:
    if msg.type != aiohttp.WSMsgType.BINARY:
        return None
    frame = frames_pb2.ServerFrame()
    frame.ParseFromString(msg.data)
    return frame


def _reason(goodbye: frames_pb2.Goodbye | None) -> str:
    return goodbye.reason if goodbye is not None else ""
