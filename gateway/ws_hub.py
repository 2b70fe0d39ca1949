"""The gateway pod's live WebSockets: who is connected here, and pushing frames to them.

A ``Connection`` owns one socket and a bounded outbox drained by its writer task, so a slow
client never blocks delivery to the others: when its outbox is full it is closed with 1013
and catches up through GetDifference after reconnecting. The ``Hub`` indexes connections by
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
from collections.abc import Callable, Iterable

from aiohttp import web
from minitg.gateway.v1 import frames_pb2

from svckit import metrics
from svckit.authn import Principal
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.gateway.ws")

OUTBOX_FRAMES = 1024
CloseCode = frames_pb2.CloseCode
GOODBYE_REASONS: dict[int, str] = {
    CloseCode.CLOSE_CODE_NORMAL: "NORMAL",
    CloseCode.CLOSE_CODE_GOING_AWAY: "SERVER_SHUTTING_DOWN",
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
    """One client socket: its principal, its outbox and its writer."""

    def __init__(self, ws: web.WebSocketResponse, principal: Principal, token_exp: float) -> None:
        self.ws, self.principal, self.token_exp = ws, principal, token_exp
        self.last_seen = time.monotonic()
        self.last_pong = time.monotonic()  # a WebSocket pong (or the connect) was seen
        self.last_checked = time.monotonic()
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue(OUTBOX_FRAMES)
        self._writer: asyncio.Task[None] | None = None
        self.closing = False
        self.closed_done = asyncio.Event()  # set once close() has finished its handshake
        self.send_lock = asyncio.Lock()  # one device's sends commit in the order received
        self.typing: dict[int, float] = {}  # chat id -> when this device last said "typing"
        self._closer: asyncio.Future[None] | None = None

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    @property
    def session_id(self) -> str:
        return self.principal.session_id

    def start_writer(self) -> None:
        """Begin draining the outbox (after Hello, which is written directly)."""
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.session_id}")

    def push(self, frame: bytes, kind: str = "update") -> None:
        """Queue a frame; a client too slow to take its frames is disconnected."""
        if self.closing:
            return
        try:
            self._outbox.put_nowait(frame)
            metrics.WS_FRAMES.labels("out", kind).inc()
        except asyncio.QueueFull:
            log.info("closing slow consumer", extra={"fields": {"session": self.session_id}})
            self._closer = asyncio.ensure_future(
                self.close(CloseCode.CLOSE_CODE_TRY_AGAIN_LATER, "client too slow")
            )

    async def _write_loop(self) -> None:
        while True:
            frame = await self._outbox.get()
            if frame is None or self.ws.closed:
                return
            try:
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int, message: str = "", reconnect_after_ms: int = 0) -> None:
        """Say Goodbye (best effort) and close the socket with ``code``."""
        if self.closing:
            return
        self.closing = True
        goodbye = frames_pb2.ServerFrame(
            goodbye=frames_pb2.Goodbye(
                code=code,  # type: ignore[arg-type]
                reason=GOODBYE_REASONS.get(code, "INTERNAL"),
                message=message,
                reconnect_after_ms=reconnect_after_ms,
            )
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.send_bytes(goodbye.SerializeToString()), 1.0)
        metrics.WS_CLOSES.labels(str(int(code))).inc()
        with contextlib.suppress(Exception):
            await self.ws.close(code=int(code), message=message.encode()[:120])
        self.closed_done.set()
        await self.stop_writer()

    async def stop_writer(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer


class Hub:
    """Every connection on this pod, by session and by user."""

    def __init__(self, pod_id: str, registry: ConnectionRegistry) -> None:
        self.pod_id, self._registry = pod_id, registry
        self._by_session: dict[str, Connection] = {}
        self._by_user: dict[int, set[Connection]] = {}
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
        peers = self._by_user.setdefault(conn.user_id, set())
        first_here = not peers
        peers.add(conn)
        metrics.WS_CONNECTIONS.set(len(self._by_session))
        if older is not None:
            self._forget(older)
            await older.close(CloseCode.CLOSE_CODE_SESSION_REPLACED, "a newer connection opened")
        if first_here:
            await self._registry.add(conn.user_id, self.pod_id)
        self.on_change(conn, True)

    async def detach(self, conn: Connection) -> None:
        """Forget ``conn`` (if it is still the session's current one)."""
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
        if peers is None:
            return False
        peers.discard(conn)
        if peers:
            return False
        del self._by_user[conn.user_id]
        return True

    async def close_session(self, session_id: str, code: int, message: str) -> None:
        conn = self._by_session.get(session_id)
        if conn is not None:
            await conn.close(code, message)

    async def close_all(self, code: int, message: str, reconnect_after_ms: int) -> None:
        await asyncio.gather(
            *(c.close(code, message, reconnect_after_ms) for c in self.connections()),
            return_exceptions=True,
        )
