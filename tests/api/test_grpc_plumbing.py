"""The shared gRPC plumbing, exercised over real in-process grpc.aio on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from svckit import metrics
from svckit.config import HostPort
from svckit.errors import InvalidField, details_from_rpc_error
from svckit.grpc_server import GrpcServer, open_channel
from svckit.logs import request_id_var
from tests.grpc_probe import health_status, reflected_services

SERVICE = "test.v1.EchoService"


def _identity(data: bytes) -> bytes:
    return data


class _Echo:
    """A raw-bytes service whose behaviour the tests choose per method."""

    def __init__(self) -> None:
        self.seen_request_ids: list[str] = []
        self.release = asyncio.Event()

    async def echo(self, request: bytes, context: aio.ServicerContext) -> bytes:
        self.seen_request_ids.append(request_id_var.get())
        return request

    async def invalid(self, request: bytes, context: aio.ServicerContext) -> bytes:
        raise InvalidField("email", "not an email address")

    async def crash(self, request: bytes, context: aio.ServicerContext) -> bytes:
        raise RuntimeError("secret internals")

    async def slow(self, request: bytes, context: aio.ServicerContext) -> bytes:
        await self.release.wait()
        return b"finished"

    async def count(self, request: bytes, context: aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(3):
            yield bytes([i])

    def register(self, server: aio.Server) -> None:
        def unary(fn: Callable[..., Awaitable[bytes]]) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(fn, _identity, _identity)

        handlers = {
            "Echo": unary(self.echo),
            "Invalid": unary(self.invalid),
            "Crash": unary(self.crash),
            "Slow": unary(self.slow),
            "Count": grpc.unary_stream_rpc_method_handler(self.count, _identity, _identity),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


class _Flag:
    def __init__(self) -> None:
        self.ok = True

    async def check(self) -> bool:
        return self.ok


@pytest.fixture
async def served() -> AsyncIterator[tuple[GrpcServer, _Echo, _Flag, str]]:
    echo, flag = _Echo(), _Flag()
    server = GrpcServer(
        role="test",
        service_name=SERVICE,
        listen=HostPort("127.0.0.1", 0),
        register=echo.register,
        checks={"database": flag.check},
        health_interval=0.1,
    )
    port = await server.start()
    yield server, echo, flag, f"127.0.0.1:{port}"
    await server.stop(0.5)


def _call(channel: aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/{SERVICE}/{method}", _identity, _identity)


async def test_health_and_reflection(served: tuple[GrpcServer, _Echo, _Flag, str]) -> None:
    """The server answers grpc.health.v1 SERVING and lists its service by reflection."""
    _, _, _, target = served
    assert await health_status(target, SERVICE) == "SERVING"
    assert SERVICE in await reflected_services(target)


async def test_health_follows_dependency(served: tuple[GrpcServer, _Echo, _Flag, str]) -> None:
    """A failing dependency check turns health NOT_SERVING, and recovery turns it back."""
    _, _, flag, target = served
    flag.ok = False
    await asyncio.sleep(0.4)
    assert await health_status(target, SERVICE) == "NOT_SERVING"
    flag.ok = True
    await asyncio.sleep(0.4)
    assert await health_status(target, SERVICE) == "SERVING"


async def test_domain_error_becomes_rich_status(
    served: tuple[GrpcServer, _Echo, _Flag, str],
) -> None:
    """A raised InvalidField reaches the caller as INVALID_ARGUMENT + ErrorInfo reason."""
    _, _, _, target = served
    async with open_channel(target, timeout=5) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await _call(channel, "Invalid")(b"x")
    details = details_from_rpc_error(caught.value)
    assert grpc.StatusCode.INVALID_ARGUMENT == details.code
    assert details.reason == "INVALID_FIELD"
    assert dict(details.metadata) == {"field": "email"}


async def test_unexpected_error_is_internal_without_details(
    served: tuple[GrpcServer, _Echo, _Flag, str],
) -> None:
    """An unexpected exception becomes INTERNAL and its message never leaks."""
    _, _, _, target = served
    async with open_channel(target, timeout=5) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await _call(channel, "Crash")(b"x")
    details = details_from_rpc_error(caught.value)
    assert (grpc.StatusCode.INTERNAL, "INTERNAL") == (details.code, details.reason)
    assert "secret" not in details.message


async def test_request_id_travels_in_metadata(served: tuple[GrpcServer, _Echo, _Flag, str]) -> None:
    """The caller's request id (a contextvar) is bound on the server side of the call."""
    _, echo, _, target = served
    request_id_var.set("rid-123")
    async with open_channel(target, timeout=5) as channel:
        assert await _call(channel, "Echo")(b"hello") == b"hello"
    assert echo.seen_request_ids == ["rid-123"]


async def test_default_deadline_applies(served: tuple[GrpcServer, _Echo, _Flag, str]) -> None:
    """A call without its own timeout gets the channel's default deadline."""
    _, _, _, target = served
    async with open_channel(target, timeout=0.3) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await _call(channel, "Slow")(b"x")
    assert grpc.StatusCode.DEADLINE_EXCEEDED == caught.value.code()


async def test_streams_pass_through(served: tuple[GrpcServer, _Echo, _Flag, str]) -> None:
    """Server-streaming handlers keep working under the interceptor."""
    _, _, _, target = served
    async with open_channel(target, timeout=5) as channel:
        call = channel.unary_stream(f"/{SERVICE}/Count", _identity, _identity)(b"")
        assert [b"\x00", b"\x01", b"\x02"] == [item async for item in call]


async def test_metrics_count_calls(served: tuple[GrpcServer, _Echo, _Flag, str]) -> None:
    """Each call increments minitg_grpc_server_handled_total with its code."""
    _, _, _, target = served
    counter = metrics.GRPC_SERVER_HANDLED.labels(SERVICE, "Invalid", "INVALID_ARGUMENT")
    before = counter._value.get()
    async with open_channel(target, timeout=5) as channel:
        with pytest.raises(aio.AioRpcError):
            await _call(channel, "Invalid")(b"x")
    for _ in range(200):  # the status can reach the client before the server counts it
        if counter._value.get() > before:
            break
        await asyncio.sleep(0.01)
    assert before + 1 == counter._value.get()


async def test_graceful_stop_finishes_in_flight(
    served: tuple[GrpcServer, _Echo, _Flag, str],
) -> None:
    """On stop, health goes NOT_SERVING, new calls are refused, in-flight calls finish."""
    server, echo, _, target = served
    async with open_channel(target, timeout=5) as channel:
        in_flight = asyncio.ensure_future(_call(channel, "Slow")(b"x"))
        await asyncio.sleep(0.1)
        stopping = asyncio.ensure_future(server.stop(3.0))
        await asyncio.sleep(0.1)
        assert await _health_or_refused(target) in {"NOT_SERVING", "refused"}
        echo.release.set()
        assert await in_flight == b"finished"
        await stopping
        with pytest.raises(aio.AioRpcError) as caught:
            await _call(channel, "Echo")(b"late")
        assert grpc.StatusCode.UNAVAILABLE == caught.value.code()


async def _health_or_refused(target: str) -> str:
    try:
        return await health_status(target, SERVICE)
    except aio.AioRpcError:
        return "refused"
