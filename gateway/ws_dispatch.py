"""Client requests on the WebSocket: each ClientFrame becomes one service call.

The frames' payloads are the client protocol's own messages (messages.proto); each
handler builds the service request from the client message's fields and the Result from
the service's reply (gateway/ws_mapping.py for the requests off the send path).

A request runs in its own task so the socket keeps reading; replies carry the request id
and may come back out of order, except that one connection's SendMessage frames are
committed in the order received (the connection's send lock). Service failures become
Error frames with the service's reason; the connection stays open.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from minitg.chat.v1 import chat_service_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2
from minitg.presence.v1 import presence_pb2, presence_service_pb2
from opentelemetry.trace import SpanKind

from gateway import ws_mapping as mapping
from gateway.clients import ServiceClients
from gateway.relays import AckRelay, SendRelay
from gateway.ws_hub import Connection
from svckit import metrics, tracing
from svckit.authn import Authenticator
from svckit.errors import RETRY_AFTER_KEY, ErrorDetails, PermissionDenied, error_details
from svckit.logs import bind_request_id
from svckit.reasons import Reason

log = logging.getLogger("minitg.gateway.ws")

# Requests that may be sent with request_id 0 (fire and forget).
NO_REPLY_OK = frozenset({"ack_updates", "set_typing"})
# The empty results (copied into each Result, never modified).
_ACKED, _TYPING_SET = messages_pb2.AckUpdatesResult(), messages_pb2.SetTypingResult()


def error_frame(request_id: int, details: ErrorDetails) -> bytes:
    """Render ``details`` as an Error frame: the retry wait only in ``retry_after_ms``, not
    repeated in metadata; RATE_LIMITED is retryable (after that wait)."""
    metadata = details.metadata
    if RETRY_AFTER_KEY in metadata:
        metadata = {k: v for k, v in metadata.items() if k != RETRY_AFTER_KEY}
    return frames_pb2.ServerFrame(
        error=frames_pb2.Error(
            request_id=request_id,
            reason=details.reason,
            message=details.message,
            retry_after_ms=details.retry_after_ms,
            retryable=details.retryable or details.reason == Reason.RATE_LIMITED,
            metadata=dict(metadata),
        )
    ).SerializeToString()


def invalid(
    request_id: int, field: str, message: str, more: Mapping[str, str] | None = None
) -> bytes:
    metadata = {"field": field} | dict(more or {})
    details = ErrorDetails.for_reason(Reason.INVALID_FIELD, message, metadata)
    return error_frame(request_id, details)


class Dispatcher:
    """Turns client frames into service calls and their replies into server frames."""

    def __init__(
        self,
        clients: ServiceClients,
        authenticator: Authenticator,
        sends: SendRelay,
        acks: AckRelay,
        max_in_flight: int,
        max_sends: int = 1024,
    ) -> None:
        self._clients, self._authn, self._max_in_flight = clients, authenticator, max_in_flight
        self._relay, self._acks = sends, acks
        # Admission control: past this many sends awaiting the chat service on this pod,
        # new sends are refused at once (RATE_LIMITED, retry soon) instead of queueing into
        # deadlines that expire after the database has done the work anyway.
        self._max_sends, self._sends = max_sends, 0
        self._handlers: dict[str, Callable[[Connection, Any], Awaitable[frames_pb2.Result]]] = {
            "send_message": self._send_message,
            "ack_updates": self._ack_updates,
            "set_typing": self._set_typing,
            "read_history": self._read_history,
            "get_state": self._get_state,
            "get_history": self._get_history,
            "edit_message": self._edit_message,
            "delete_messages": self._delete_messages,
            "renew_token": self._renew_token,
        }

    def accept(
        self, conn: Connection, frame: frames_pb2.ClientFrame, pending: set[int]
    ) -> Awaitable[None] | None:
        """Validate a decoded frame; return the work to run for it, or None when answered."""
        kind = frame.WhichOneof("payload")
        metrics.frame_counter("in", kind or "unknown").inc()
        rid = frame.request_id
        if kind is None:
            conn.push(_unknown_frame(rid), "error")
            return None
        if rid == 0 and kind not in NO_REPLY_OK:
            conn.push(invalid(0, "request_id", f"{kind} needs a non-zero request_id"), "error")
            return None
        if rid and rid in pending:
            # Answered on request id 0: an Error with the reused id would be taken by a
            # client for the reply to the request that still awaits it.
            message = "this request_id is already awaiting a reply"
            conn.push(invalid(0, "request_id", message, {"request_id": str(rid)}), "error")
            return None
        if kind == "ping":
            pong = frames_pb2.Pong(request_id=rid, server_time_ms=int(time.time() * 1000))
            conn.push(frames_pb2.ServerFrame(pong=pong).SerializeToString(), "pong")
            return None
        if len(pending) >= self._max_in_flight:
            details = ErrorDetails.for_reason(
                Reason.RATE_LIMITED,
                "too many requests in flight on this connection",
                {RETRY_AFTER_KEY: "100"},
            )
            conn.push(error_frame(rid, details), "error")
            return None
        if kind == "send_message" and self._sends >= self._max_sends:
            details = ErrorDetails.for_reason(
                Reason.RATE_LIMITED, "the server is busy; retry shortly", {RETRY_AFTER_KEY: "200"}
            )
            conn.push(error_frame(rid, details), "error")
            metrics.SENDS_SHED.inc()
            return None
        if kind == "ack_updates" and rid == 0:  # fire and forget: no task, no reply
            self._acks.post(conn.principal, frame.ack_updates)
            return None
        if kind == "get_difference":
            return self._get_difference(conn, frame.get_difference, rid)
        if kind == "send_message":
            self._sends += 1  # reserved now, released when the reply is out
            return self._counted(self._run(conn, kind, frame.send_message, rid))
        return self._run(conn, kind, getattr(frame, kind), rid)

    async def _counted(self, work: Awaitable[None]) -> None:
        try:
            await work
        finally:
            self._sends -= 1

    async def _run(self, conn: Connection, kind: str, request: Any, rid: int) -> None:
        bind_request_id(None)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("ws %s #%d from session %s", kind, rid, conn.session_id)
        try:
            with tracing.span(f"ws {kind}", SpanKind.SERVER, None, {"minitg.request_id": rid}):
                result = await self._handlers[kind](conn, request)
        except Exception as exc:
            if rid:
                conn.push(error_frame(rid, _details_of(exc)), "error")
            return
        if rid:
            result.request_id = rid
            conn.push(frames_pb2.ServerFrame(result=result).SerializeToString(), "result")

    def _md(self, conn: Connection) -> tuple[tuple[str, str], ...]:
        return conn.principal.metadata()

    async def _send_message(self, conn: Connection, request: Any) -> frames_pb2.Result:
        async with conn.send_lock:
            reply = await self._relay.send(conn.principal, request)
        if conn.typing.pop(request.chat_id, None) is not None:
            await self._stop_typing(conn, request.chat_id)  # sending ends "typing…"
        result = frames_pb2.Result()  # filled in place: no intermediate message to copy
        sent = result.send_message
        sent.message_id, sent.seq, sent.date_ms = reply.message_id, reply.seq, reply.date_ms
        sent.pts, sent.pts_count = reply.pts, reply.pts_count
        return result

    async def _stop_typing(self, conn: Connection, chat_id: int) -> None:
        cancel = presence_service_pb2.SetTypingRequest(
            chat_id=chat_id, action=presence_pb2.TYPING_ACTION_CANCEL
        )
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._clients.presence.SetTyping(cancel, metadata=self._md(conn))

    async def _ack_updates(self, conn: Connection, request: Any) -> frames_pb2.Result:
        await self._acks.ack(conn.principal, request)  # the device is the connection's
        return frames_pb2.Result(ack_updates=_ACKED)

    async def _set_typing(self, conn: Connection, request: Any) -> frames_pb2.Result:
        call = presence_service_pb2.SetTypingRequest(chat_id=request.chat_id, action=request.action)
        await self._clients.presence.SetTyping(call, metadata=self._md(conn))
        if request.action == presence_pb2.TYPING_ACTION_TYPING:
            conn.typing[request.chat_id] = time.monotonic()
        else:
            conn.typing.pop(request.chat_id, None)
        return frames_pb2.Result(set_typing=_TYPING_SET)

    async def _read_history(self, conn: Connection, request: Any) -> frames_pb2.Result:
        call = mapping.read_history_request(request)
        reply = await self._clients.chat.ReadHistory(call, metadata=self._md(conn))
        return mapping.read_history_result(reply)

    async def _get_state(self, conn: Connection, request: Any) -> frames_pb2.Result:
        call = chat_service_pb2.GetStateRequest()
        reply = await self._clients.chat.GetState(call, metadata=self._md(conn))
        return mapping.get_state_result(reply)

    async def _get_history(self, conn: Connection, request: Any) -> frames_pb2.Result:
        call = mapping.get_history_request(request)
        reply = await self._clients.chat.GetHistory(call, metadata=self._md(conn))
        return mapping.get_history_result(reply)

    async def _edit_message(self, conn: Connection, request: Any) -> frames_pb2.Result:
        call = mapping.edit_message_request(request)
        reply = await self._clients.chat.EditMessage(call, metadata=self._md(conn))
        return mapping.edit_message_result(reply)

    async def _delete_messages(self, conn: Connection, request: Any) -> frames_pb2.Result:
        call = mapping.delete_messages_request(request)
        reply = await self._clients.chat.DeleteMessages(call, metadata=self._md(conn))
        return mapping.delete_messages_result(reply)

    async def _renew_token(self, conn: Connection, request: Any) -> frames_pb2.Result:
        fresh = await self._authn.authenticate(request.access_token)
        if (fresh.user_id, fresh.session_id) != (conn.user_id, conn.session_id):
            raise PermissionDenied("the new token belongs to another session")
        conn.principal = fresh
        conn.token_exp = float(fresh.expires_at)
        return frames_pb2.Result(
            renew_token=frames_pb2.RenewTokenResult(token_expires_at_ms=fresh.expires_at * 1000)
        )

    async def _get_difference(self, conn: Connection, request: Any, rid: int) -> None:
        """One Result per chunk of the server stream, in order."""
        bind_request_id(None)
        try:
            ask = mapping.get_difference_request(request)
            call = self._clients.chat.GetDifference(ask, metadata=self._md(conn))
            async for chunk in call:
                result = mapping.get_difference_result(rid, chunk)
                conn.push(frames_pb2.ServerFrame(result=result).SerializeToString(), "result")
        except Exception as exc:
            conn.push(error_frame(rid, _details_of(exc)), "error")


def _unknown_frame(rid: int) -> bytes:
    message = "this server does not know that request"
    details = ErrorDetails.for_reason(Reason.UNKNOWN_FRAME, message)
    return error_frame(rid, details)


def _details_of(exc: BaseException) -> ErrorDetails:
    return error_details(exc, "a WebSocket request", relay=True)
