"""The gateway pod's live WebSockets: who is connected here, and pushing frames to them.

A ``Connection`` owns one socket and writes pushed frames to it at once; only while its
transport is paused do frames wait, in a bounded backlog, so a slow client never blocks
delivery to the others: when the backlog is full it is closed with 1013 and catches up
through GetDifference after reconnecting. The ``Hub`` indexes connections by
session and by user, keeps this pod's entries in the connection registry (added before the
first frame so no update can slip between catch-up and live delivery, refreshed every
heartbeat, removed with the last connection), and closes connections when their session
ends, their token expires or a newer connection of the same session opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any

from aiohttp import web
from minitg.gateway.v1 import frames_pb2

from svckit import metrics
from svckit.authn import Principal
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.gateway.ws")

OUTBOX_FRAMES = 1024
CLOSE_TIMEOUT = 5.0  # seconds a server-initiated close waits for the client's close frame
CloseCode = frames_pb2.CloseCode
GOODBYE_REASONS: dict[int, str] = {
    CloseCode.CLOSE_CODE_NORMAL: "NORMAL",
    CloseCode.CLOSE_CODE_GOING_AWAY: "SERVER_SHUTTING_DOWN",
    CloseCode.CLOSE_CODE_PROTOCOL_ERROR: "PROTOCOL_ERROR",
    CloseCode.CLOSE_CODE_UNSUPPORTED_DATA: "UNSUPPORTED_DATA",
    CloseCode.CLOSE_CODE_MALFORMED_FRAME: "MALFORMED_FRAME",
    CloseCode.CLOSE_CODE_POLICY_VIOLATION: "POLICY_VIOLATION",
    CloseCode.CLOSE_CODE_FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
    CloseCode.CLOSE_CODE_INTERNAL_ERROR: "INTERNAL",
    CloseCode.CLOSE_CODE_TRY_AGAIN_LATER: "TRY_AGAIN_LATER",
    CloseCode.CLOSE_CODE_HEARTBEAT_TIMEOUT: "HEARTBEAT_TIMEOUT",
    CloseCode.CLOSE_CODE_SESSION_REVOKED: "SESSION_REVOKED",
    CloseCode.CLOSE_CODE_SESSION_REPLACED: "SESSION_REPLACED",
    CloseCode.CLOSE_CODE_TOKEN_EXPIRED: "TOKEN_EXPIRED",
    CloseCode.CLOSE_CODE_RATE_LIMITED: "RATE_LIMITED",
}


class Connection:
    """One client socket: its principal and its ordered, bounded output.

    Frames are written to the socket as they are pushed (the WebSocket write itself is
    synchronous; only waiting for a paused transport is not): nothing per socket waits in
    between, no writer task, no queue. Frames pushed before the Hello is out, or while the
    transport is paused, wait in a backlog (created then, dropped when empty) drained by a
    task that exists only that long; a backlog past ``OUTBOX_FRAMES`` closes with 1013.
    """

    __slots__ = (
        "_backlog", "_close_args", "_closed", "_closer", "_lock", "_started", "_writer",
        "closing", "last_checked", "last_pong", "last_seen", "principal", "reader",
        "token_exp", "typing", "ws",
    )  # fmt: skip

    def __init__(self, ws: web.WebSocketResponse, principal: Principal, token_exp: float) -> None:
        self.ws, self.principal, self.token_exp = ws, principal, token_exp
        now = time.monotonic()
        self.last_seen = now
        self.last_pong = now  # a WebSocket pong (or the connect) was seen
        self.last_checked = now
        self.closing = False
        self.typing: dict[int, float] = {}  # chat id -> when this device last said "typing"
        self._lock: asyncio.Lock | None = None
        self._started = False  # the Hello is out: later frames may be written directly
        self._backlog: deque[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None  # drains the backlog, while it exists
        self._closed: asyncio.Future[None] | None = None  # done once close() has finished
        self._closer: asyncio.Future[None] | None = None
        # The task in the socket's read loop, while it is there (see close()).
        self.reader: asyncio.Task[Any] | None = None
        self._close_args: tuple[int, str, int] | None = None  # a close() left to the reader

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    @property
    def session_id(self) -> str:
        return self.principal.session_id

    @property
    def send_lock(self) -> asyncio.Lock:
        """Serialises this device's sends (they commit in the order received)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def start(self, hello: bytes) -> None:
        """Write the Hello, then the frames pushed while it was being prepared."""
        self._started = True
        queued, self._backlog = self._backlog, None
        self._write(hello)
        for frame in queued or ():
            if self._writer is None:
                self._write(frame)
            else:
                self._hold(frame)

    def push(self, frame: bytes, kind: str = "update") -> None:
        """Send a frame; a client too slow to take its frames is disconnected."""
        if self.send(frame):
            metrics.frame_counter("out", kind).inc()

    def send(self, frame: bytes) -> bool:
        """``push`` without counting the frame (the caller counts a batch of pushes at
        once); False when the frame was dropped (closing, or a too slow client)."""
        if self.closing or self._closer is not None:
            return False
        if self._started and self._writer is None:
            self._write(frame)
        elif not self._hold(frame):
            log.info("closing slow consumer", extra={"fields": {"session": self.session_id}})
            self._closer = asyncio.ensure_future(
                self.close(CloseCode.CLOSE_CODE_TRY_AGAIN_LATER, "client too slow")
            )
            return False
        return True

    def _hold(self, frame: bytes) -> bool:
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        elif len(backlog) >= OUTBOX_FRAMES:
            return False
        backlog.append(frame)
        return True

    def _write(self, frame: bytes) -> None:
        """Write ``frame`` now; if that pauses the transport, later frames wait for it."""
        sending = self.ws.send_bytes(frame)
        try:
            blocked = sending.send(None)  # returns at once unless the transport is paused
        except StopIteration:
            return
        except (ConnectionError, RuntimeError):
            return  # the socket is going away; the read loop sees it end
        self._writer = asyncio.ensure_future(self._drain(_Resumed(sending, blocked)))

    async def _drain(self, paused: _Resumed) -> None:
        try:
            await paused
            while self._backlog:
                await self.ws.send_bytes(self._backlog.popleft())
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._writer, self._backlog = None, None

    async def close(self, code: int, message: str = "", reconnect_after_ms: int = 0) -> None:
        """Say Goodbye, then close the socket with ``code`` and wait for the client's close.

        The close handshake completes only when the task reading the socket closes it:
        aiohttp drops the TCP connection right after the close frame when another task
        closes a socket whose reader is waiting, and a client still sending then gets a
        reset that can overtake the close frame (it sees 1006). So from any other task
        this interrupts the read loop (cancelling its task, see ``interrupted``) and
        returns; the read loop then calls ``finish_close``. ``wait_closed`` waits for it.
        """
        if self.closing:
            return
        self.closing = True
        self._closed = asyncio.get_running_loop().create_future()
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task():
            self._close_args = (code, message, reconnect_after_ms)
            reader.cancel()
            return
        await self._close_now(code, message, reconnect_after_ms)

    def interrupted(self) -> bool:
        """In the read loop's task, on CancelledError: True when it is close()'s request
        (then the loop calls ``finish_close``), False when the task is being cancelled."""
        task = asyncio.current_task()
        return self._close_args is not None and task is not None and task.uncancel() == 0

    async def finish_close(self) -> None:
        """The close another task asked for (see close), in the read loop's task."""
        args, self._close_args = self._close_args, None
        if args is not None:
            await self._close_now(*args)

    async def _close_now(self, code: int, message: str, reconnect_after_ms: int) -> None:
        reason = GOODBYE_REASONS.get(code, "INTERNAL")
        goodbye = frames_pb2.ServerFrame(
            goodbye=frames_pb2.Goodbye(
                code=code,  # type: ignore[arg-type]
                reason=reason,
                message=message,
                reconnect_after_ms=reconnect_after_ms,
            )
        )
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.send_bytes(goodbye.SerializeToString()), 1.0)
            metrics.WS_CLOSES.labels(str(int(code))).inc()
            # Waits for the client's close frame (a dead client: until the timeout).
            with contextlib.suppress(Exception):
                close_reason = (message or reason).encode()[:120]
                await asyncio.wait_for(
                    self.ws.close(code=int(code), message=close_reason), CLOSE_TIMEOUT
                )
        finally:
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)
            await self.stop_writer()

    async def wait_closed(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for a close() in progress to finish its handshake."""
        if self._closed is not None:
            await asyncio.wait((self._closed,), timeout=timeout)

    async def stop_writer(self) -> None:
        """Drop what is still queued (the socket is closed or closing)."""
        writer, self._writer, self._backlog = self._writer, None, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


class _Resumed:
    """Awaiting this finishes a coroutine that was stepped once by hand and yielded
    ``blocked`` (what a Task would have waited on before resuming it)."""

    __slots__ = ("_blocked", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, None], blocked: Any) -> None:
        self._coro, self._blocked = coro, blocked

    def __await__(self) -> Generator[Any, None, None]:
        yield self._blocked
        yield from self._coro.__await__()


class Hub:
    """Every connection on this pod, by session and by user."""

    def __init__(self, pod_id: str, registry: ConnectionRegistry) -> None:
        self.pod_id, self._registry = pod_id, registry
        self._by_session: dict[str, Connection] = {}
        # A tuple per user: most users have one device here, and a one-tuple is a quarter
        # of an empty set's size (the pushes iterate it; attach/detach rebuild it).
        self._by_user: dict[int, tuple[Connection, ...]] = {}
        self.on_change: Callable[[Connection, bool], None] = lambda _c, _up: None

    def __len__(self) -> int:
        return len(self._by_session)

    def of_user(self, user_id: int) -> Iterable[Connection]:
        return self._by_user.get(user_id, ())

    def connections(self) -> list[Connection]:
        return list(self._by_session.values())

    def user_ids(self) -> list[int]:
        return list(self._by_user)

    async def attach(self, conn: Connection) -> None:
        """Register ``conn``; an older connection of the same session is replaced (4002)."""
        older = self._by_session.get(conn.session_id)
        self._by_session[conn.session_id] = conn
        peers = self._by_user.get(conn.user_id, ())
        first_here = not peers
        self._by_user[conn.user_id] = (*peers, conn)
        metrics.WS_CONNECTIONS.set(len(self._by_session))
        if older is not None:
            self._forget(older)
            await older.close(CloseCode.CLOSE_CODE_SESSION_REPLACED, "a newer connection opened")
        if first_here:
            await self._registry.add(conn.user_id, self.pod_id)
        self.on_change(conn, True)

    async def detach(self, conn: Connection) -> None:
        """Forget ``conn`` (if it is still the session's current one)."""
        # Marked closing before any await: a heartbeat sweep that took its slice of
        # connections earlier must not report this one alive (a HEARTBEAT after its
        # DISCONNECTED kept the user online until the registry TTL) nor re-add its
        # registry entry after the remove below.
        conn.closing = True
        if self._by_session.get(conn.session_id) is conn:
            del self._by_session[conn.session_id]
        last_here = self._forget(conn)
        metrics.WS_CONNECTIONS.set(len(self._by_session))
        if last_here:
            with contextlib.suppress(Exception):
                await self._registry.remove(conn.user_id, self.pod_id)
        self.on_change(conn, False)

    def _forget(self, conn: Connection) -> bool:
        peers = self._by_user.get(conn.user_id)
        if peers is None or conn not in peers:
            return False
        rest = tuple(c for c in peers if c is not conn)
        if rest:
            self._by_user[conn.user_id] = rest
            return False
        del self._by_user[conn.user_id]
        return True

    async def close_session(self, session_id: str, code: int, message: str) -> None:
        conn = self._by_session.get(session_id)
        if conn is not None:
            await conn.close(code, message)

    async def close_all(self, code: int, message: str, reconnect_after_ms: int) -> None:
        conns = self.connections()
        await asyncio.gather(
            *(c.close(code, message, reconnect_after_ms) for c in conns),
            return_exceptions=True,
        )
        await asyncio.gather(*(c.wait_closed(CLOSE_TIMEOUT + 1) for c in conns))
