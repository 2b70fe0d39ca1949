"""``GET /v1/ws``: authenticate the upgrade, then run one client's socket.

Authentication happens on the HTTP upgrade (``Authorization: Bearer``, or the
``access_token`` query parameter for browsers, which cannot set headers on a WebSocket),
so a bad token is a plain 401 JSON error and never an open socket. Browsers also send
``Origin``, which must be in MINITG_ALLOWED_ORIGINS; native clients send none. A client
may offer the subprotocol ``minitg.v1`` or none. Every close the gateway starts is done
by the socket's read loop, which can await the client's close frame (``Connection.close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web
from google.protobuf.message import DecodeError
from minitg.gateway.v1 import frames_pb2

from gateway.deps import DEPS
from gateway.relays import StateReader
from gateway.ws_dispatch import Dispatcher
from gateway.ws_hello import hello_frame
from gateway.ws_hub import CloseCode, Connection, Hub
from svckit import metrics
from svckit.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from svckit.reasons import Reason

log = logging.getLogger("minitg.gateway.ws")

# Per-connection flood limit: sustained frames per second, and the burst allowed above it.
FRAMES_PER_SECOND = 200.0
FRAME_BURST = 400.0
# The WebSocket subprotocol a client may offer (or offer none); see docs/PROTOCOL.md.
SUBPROTOCOL = "minitg.v1"


@dataclass
class WsRuntime:
    """The WebSocket machinery of one gateway pod."""

    hub: Hub
    dispatcher: Dispatcher
    states: StateReader


WS = web.AppKey("ws", WsRuntime)


def _token_of(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use Authorization: Bearer <token>", reason=Reason.TOKEN_INVALID)
        return token.strip()
    token = request.query.get("access_token", "")
    if not token:
        raise Unauthenticated("an access token is required", reason=Reason.TOKEN_MISSING)
    return token


def _check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    origin = request.headers.get("Origin")
    if origin is None or "*" in allowed or origin.rstrip("/") in allowed:
        return
    raise PermissionDenied(f"origin {origin!r} may not open a WebSocket here")


def _check_subprotocol(request: web.Request) -> None:
    """A client may offer ``minitg.v1`` or no subprotocol. Offering only others would get
    an upgrade without Sec-WebSocket-Protocol, which standard client libraries reject
    with no reason given; a JSON error says why instead."""
    offered = request.headers.get("Sec-WebSocket-Protocol")
    if offered is None or SUBPROTOCOL in (p.strip() for p in offered.split(",")):
        return
    raise InvalidArgument(
        f"Sec-WebSocket-Protocol offers none this server speaks: offer {SUBPROTOCOL} or none"
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    deps, runtime = request.app[DEPS], request.app[WS]
    if deps.draining:
        raise Unavailable("this gateway is shutting down; reconnect to another")
    _check_subprotocol(request)
    principal = await deps.authn.authenticator.authenticate(_token_of(request))
    _check_origin(request, deps.cfg.messaging.allowed_origins)
    limits = deps.limiter.limits
    await deps.limiter.hit("ws-upgrade", str(principal.user_id), limits.ws_upgrade_per_user)
    # No per-socket heartbeat timer (aiohttp's costs a timer and a task per socket per beat):
    # one pod-wide sweep pings every socket (ws_maintenance), and pongs are read here.
    ws = _Socket(
        autoping=False,
        # aiohttp refuses a message of max_msg_size bytes or more; Hello.max_frame_bytes
        # is the largest accepted.
        max_msg_size=deps.cfg.messaging.max_frame_bytes + 1,
        compress=False,
        protocols=(SUBPROTOCOL,),
        decode_text=False,  # text frames are refused (1003) whatever they hold
    )
    await ws.prepare(request)
    conn = Connection(ws, principal, float(principal.expires_at))
    await runtime.hub.attach(conn)  # registered before the state read: no missed window
    requests = _Requests()
    try:
        conn.start(await hello_frame(conn, runtime.states, deps.cfg.messaging))
        await _serve(conn, runtime.dispatcher, requests)
    finally:
        requests.cancel()
        if conn.closing:  # closed from another task: let its close handshake finish first
            await conn.wait_closed(5)
        await runtime.hub.detach(conn)
        await conn.stop_writer()
    return ws


class _Socket(web.WebSocketResponse):
    """aiohttp closes the socket itself inside receive() when the client breaks the
    WebSocket framing (1002) or sends a message over max_msg_size (1009), with no reason
    and before the read loop sees anything; this says Goodbye first and gives the close
    frame a reason, like every close the gateway starts. (aiohttp cannot read the rest
    of such a stream, so it then drops the connection without awaiting the client's close.)
    """

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code in _REFUSALS and not message and not self.closed:
            reason, text = _REFUSALS[code]
            goodbye = frames_pb2.ServerFrame(
                goodbye=frames_pb2.Goodbye(code=code, reason=reason, message=text)  # type: ignore[arg-type]
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_bytes(goodbye.SerializeToString()), 1.0)
            metrics.WS_CLOSES.labels(str(code)).inc()
            message = text.encode()
        return await super().close(code=code, message=message, drain=drain)


_REFUSALS: dict[int, tuple[str, str]] = {
    CloseCode.CLOSE_CODE_PROTOCOL_ERROR: ("PROTOCOL_ERROR", "broken WebSocket framing"),
    CloseCode.CLOSE_CODE_FRAME_TOO_LARGE: ("FRAME_TOO_LARGE", "frame above max_frame_bytes"),
}


class _Requests:
    """One connection's requests awaiting their reply. The sets are made by the first
    request: an idle socket (pongs only) never has them."""

    __slots__ = ("_pending", "_tasks")

    def __init__(self) -> None:
        self._pending: set[int] | None = None  # request ids awaiting a reply
        self._tasks: set[asyncio.Task[None]] | None = None

    @property
    def pending(self) -> set[int]:
        if self._pending is None:
            self._pending = set()
        return self._pending

    def track(self, work: Awaitable[None], rid: int) -> None:
        """Run ``work`` in its own task, its request id pending until it is done."""
        pending = self.pending
        if rid:
            pending.add(rid)

        async def run() -> None:
            try:
                await work
            finally:
                pending.discard(rid)

        if self._tasks is None:
            self._tasks = set()
        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in self._tasks or ():
            task.cancel()


async def _serve(conn: Connection, dispatcher: Dispatcher, requests: _Requests) -> None:
    """Read the socket as the connection's reader task, then finish the close another task
    asked for meanwhile, if any (see ``Connection.close``)."""
    conn.reader = asyncio.current_task()
    try:
        await _read_loop(conn, dispatcher, requests)
    except asyncio.CancelledError:
        if not conn.interrupted():
            raise
    except Exception:  # a bug: the client gets 1011, not a half-answered upgrade
        log.exception("WebSocket read loop failed", extra={"fields": {"session": conn.session_id}})
        await conn.close(CloseCode.CLOSE_CODE_INTERNAL_ERROR, "internal error")
    finally:
        conn.reader = None
    await conn.finish_close()


async def _read_loop(conn: Connection, dispatcher: Dispatcher, requests: _Requests) -> None:
    allowance, stamp = FRAME_BURST, time.monotonic()
    ws = conn.ws
    while True:
        msg = await ws.receive()
        now = time.monotonic()
        conn.last_seen = now
        allowance = min(FRAME_BURST, allowance + (now - stamp) * FRAMES_PER_SECOND)
        stamp = now
        if allowance < 1:
            await conn.close(CloseCode.CLOSE_CODE_RATE_LIMITED, "too many frames", 5000)
            return
        allowance -= 1
        if msg.type == WSMsgType.PONG:
            conn.last_pong = now
            continue
        if msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
            continue
        if msg.type == WSMsgType.TEXT:
            await conn.close(CloseCode.CLOSE_CODE_UNSUPPORTED_DATA, "binary frames only")
            return
        if msg.type != WSMsgType.BINARY:
            return  # ERROR (e.g. too large: aiohttp closes with 1009) or CLOSE
        frame = frames_pb2.ClientFrame()
        try:
            frame.ParseFromString(msg.data)
        except DecodeError:
            await conn.close(CloseCode.CLOSE_CODE_MALFORMED_FRAME, "not a ClientFrame")
            return
        work = dispatcher.accept(conn, frame, requests.pending)
        if work is not None:
            requests.track(work, frame.request_id)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/ws", websocket)
