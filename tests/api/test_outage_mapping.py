"""A backend outage that escapes a request (database or broker unreachable) reaches the
caller as UNAVAILABLE with a retry hint, never INTERNAL, on gRPC and on REST."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from aiohttp import web
from grpc import aio

from gateway.middleware import observe
from svckit.config import HostPort
from svckit.errors import details_from_rpc_error
from svckit.grpc_server import GrpcServer, open_channel
from svckit.ports import BusUnavailable, StorageError, StorageUnavailable

SERVICE = "test.v1.OutageService"
FAILURES: dict[str, Exception] = {
    "Database": StorageUnavailable("connection refused"),
    "Broker": BusUnavailable("broker unreachable"),
    "Bug": StorageError("syntax error at or near SELEC"),  # not retryable: a bug
}


def _identity(data: bytes) -> bytes:
    return data


def _register(server: aio.Server) -> None:
    def failing(exc: Exception) -> grpc.RpcMethodHandler:
        async def handle(request: bytes, context: aio.ServicerContext) -> bytes:
            raise exc

        return grpc.unary_unary_rpc_method_handler(handle, _identity, _identity)

    handlers = {name: failing(exc) for name, exc in FAILURES.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = GrpcServer(
        role="test",
        service_name=SERVICE,
        listen=HostPort("127.0.0.1", 0),
        register=_register,
        checks={},
        health_interval=1,
    )
    port = await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0.5)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "code", "reason"),
    [
        ("Database", grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
        ("Broker", grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
        ("Bug", grpc.StatusCode.INTERNAL, "INTERNAL"),
    ],
)
async def test_grpc_outage_is_unavailable(
    target: str, method: str, code: grpc.StatusCode, reason: str
) -> None:
    """Retryable storage and bus failures are UNAVAILABLE with retry_after_ms; others stay
    INTERNAL."""
    async with open_channel(target, timeout=5) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/{method}", _identity, _identity)(b"x")
    details = details_from_rpc_error(caught.value)
    assert (code, reason) == (details.code, details.reason)
    if code == grpc.StatusCode.UNAVAILABLE:
        assert "1000" == details.metadata["retry_after_ms"]


@pytest.mark.asyncio
async def test_rest_outage_is_503_with_retry_after() -> None:
    """A database outage escaping a gateway handler is 503 UNAVAILABLE + Retry-After."""

    async def handler(request: web.Request) -> web.Response:
        raise StorageUnavailable("connection refused")

    app = web.Application(middlewares=[observe])
    app.router.add_get("/v1/thing", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/v1/thing") as resp,
        ):
            body = await resp.json()
            assert (503, "UNAVAILABLE") == (resp.status, body["error"]["code"])
            assert "1" == resp.headers["Retry-After"]
    finally:
        await runner.cleanup()
