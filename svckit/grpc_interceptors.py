"""The server and client interceptors every minitg gRPC process installs.

Server side, one interceptor does five jobs in a single handler wrap (five stacked
wrappers would cost five extra coroutine frames per call on the hot path): bind the
request id, enforce the method's declared auth mode (``svckit.grpc_auth``), count and
time the call (RED metrics), log failures, and map domain errors to rich statuses.
Client side, one interceptor forwards the request id and puts a deadline on every
outgoing call that does not set its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio
from opentelemetry.trace import SpanKind

from svckit import metrics, tracing
from svckit.errors import ErrorDetails, InvalidArgument, error_details, to_grpc_status
from svckit.grpc_auth import USER, AuthMode, CallGuard
from svckit.grpc_calls import ClientCallTimer, outgoing_metadata
from svckit.logs import REQUEST_ID_HEADER, bind_request_id

log = logging.getLogger("minitg.grpc")

# grpc-stubs lags grpc.aio (no abort_with_status); the context is used dynamically.
Context = Any
# The stubs make these bases generic; at run time they are plain classes.
if TYPE_CHECKING:
    _ServerInterceptorBase = aio.ServerInterceptor[Any, Any]
    _UnaryUnaryClientBase = aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamClientBase = aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _ServerInterceptorBase = aio.ServerInterceptor
    _UnaryUnaryClientBase = aio.UnaryUnaryClientInterceptor
    _UnaryStreamClientBase = aio.UnaryStreamClientInterceptor

_UNTOUCHED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else None
    return None


class ServerInterceptor(_ServerInterceptorBase):
    """Request id, auth mode, RED metrics, failure logging and domain-error mapping for
    every RPC. Without a ``guard`` (test probes) no auth mode is enforced."""

    def __init__(self, guard: CallGuard | None = None) -> None:
        self._guard = guard
        self._access: dict[str, _Access] = {}  # per method: no allocation per call

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_UNTOUCHED_PREFIXES):
            return handler
        service, name = metrics.split_method(method)
        access = self._access.get(method)
        if access is None and self._guard is not None:
            access = self._access[method] = _Access(self._guard, self._guard.mode(method))
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, service, name, access),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, service, name, access),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # Client-streaming RPCs are not part of our API; with a guard, one would run
        # unchecked, so it is not served at all (UNIMPLEMENTED) rather than served open.
        return handler if self._guard is None else None  # type: ignore[return-value]


class _Access:
    """A method's declared auth mode and the guard that enforces it."""

    __slots__ = ("guard", "mode")

    def __init__(self, guard: CallGuard, mode: AuthMode) -> None:
        self.guard, self.mode = guard, mode


class _CallScope:
    """Bookkeeping shared by the unary and streaming wrappers."""

    def __init__(self, service: str, method: str, context: Context) -> None:
        self.service, self.method, self.context = service, method, context
        bind_request_id(_metadata_value(context.invocation_metadata(), REQUEST_ID_HEADER))
        self.started = time.perf_counter()
        metrics.GRPC_SERVER_IN_FLIGHT.labels(service).inc()

    async def fail(self, details: ErrorDetails) -> None:
        """Put ``details`` on the wire as this call's rich status."""
        await self.context.abort_with_status(to_grpc_status(details))
        raise AssertionError("unreachable")  # abort_with_status always raises

    def finish(self, code: grpc.StatusCode) -> None:
        metrics.GRPC_SERVER_IN_FLIGHT.labels(self.service).dec()
        metrics.GRPC_SERVER_HANDLED.labels(self.service, self.method, code.name).inc()
        metrics.GRPC_SERVER_SECONDS.labels(self.service, self.method).observe(
            time.perf_counter() - self.started
        )
        if log.isEnabledFor(logging.DEBUG):  # never per call at INFO: this is the hot path
            log.debug("%s/%s -> %s", self.service, self.method, code.name)


def _rpc(service: str, method: str) -> dict[str, str | int]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


@contextlib.asynccontextmanager
async def _served(
    service: str, method: str, context: Context, access: _Access | None
) -> AsyncIterator[None]:
    """Everything around one call: request id, span, metrics, error mapping, deadline,
    and the caller's credentials checked against the method's auth mode."""
    scope = _CallScope(service, method, context)
    code = grpc.StatusCode.OK
    parent = tracing.parent_from(context.invocation_metadata())
    with tracing.span(f"{service}/{method}", SpanKind.SERVER, parent, _rpc(service, method)):
        try:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                # The caller has given up: do not spend a database round trip on it.
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                await context.abort(code, "deadline exceeded before the call started")
            if access is not None:  # inline, not a helper coroutine: one frame less per call
                if access.mode == USER:
                    await access.guard.authenticate(context)
                else:
                    access.guard.admit(access.mode, context)
            yield
        except aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            details = error_details(exc, f"{service}/{method}")
            code = details.code
            await scope.fail(details)
        finally:
            scope.finish(code)


class _Undecodable:
    """Stands in for a request whose bytes are not the method's message: grpc would
    otherwise answer a bare UNKNOWN naming the parser's exception, before any of our code
    (auth, metrics, the error contract) ran."""


_UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError:
            return _UNDECODABLE

    return deserialize


def _decoded(request: Any) -> Any:
    """The request, or MALFORMED_REQUEST (after the caller's credentials were checked)."""
    if request is _UNDECODABLE:
        raise InvalidArgument("the request could not be decoded as the method's message")
    return request


def _wrap_unary(behavior: Any, service: str, method: str, access: _Access | None) -> Any:
    async def handle(request: Any, context: Context) -> Any:
        async with _served(service, method, context, access):
            result = behavior(_decoded(request), context)
            return await result if inspect.isawaitable(result) else result

    return handle


def _wrap_stream(behavior: Any, service: str, method: str, access: _Access | None) -> Any:
    if not inspect.isasyncgenfunction(behavior):
        # a handler that uses context.write
        return _wrap_unary(behavior, service, method, access)

    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        async with _served(service, method, context, access):
            async for item in behavior(_decoded(request), context):
                yield item

    return handle


class ClientInterceptor(_UnaryUnaryClientBase, _UnaryStreamClientBase):
    """Forward the request id and enforce a default deadline on outgoing calls."""

    def __init__(self, default_timeout: float, stream_timeout: float | None = None) -> None:
        self._default_timeout = default_timeout
        self._stream_timeout = stream_timeout

    def _details(self, details: aio.ClientCallDetails, timeout: float | None) -> Any:
        metadata = aio.Metadata(*outgoing_metadata(details.metadata))
        return aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: aio.ClientCallDetails, request: Any
    ) -> Any:
        details = self._details(client_call_details, self._default_timeout)
        name = details.method.decode() if isinstance(details.method, bytes) else details.method
        # Awaiting here (instead of returning the call) lets us record the outcome;
        # grpc.aio wraps a returned response object back into a call for the caller.
        async with ClientCallTimer(*metrics.split_method(name)):
            return await (await continuation(details, request))

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details, self._stream_timeout), request)
