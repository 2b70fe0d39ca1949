"""A peer channel uses a restarted service within about a second (issue 15 item 4).

gRPC's default reconnect backoff starts at 1 s and grows by 1.6 per failed attempt up to
120 s: a service down for 6 s was retried only 4 times, and its callers kept failing with
UNAVAILABLE for seconds after it was ready again. ``open_channel`` caps the backoff at 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svckit.config import HostPort
from svckit.grpc_server import GrpcServer, open_channel

DOWN_SECONDS = 6.0
CALL_SPACING = 0.1


def _server(port: int) -> GrpcServer:
    return GrpcServer(
        role="probe",
        service_name="minitg.probe.v1.Probe",
        listen=HostPort("127.0.0.1", port),
        register=lambda _server: None,
        checks={},
        health_interval=1.0,
    )


@contextlib.asynccontextmanager
async def _refusing_listener(port: int) -> AsyncIterator[list[int]]:
    """Accept and at once close every TCP connection on ``port``; yield the accept count
    (each is one reconnect attempt by the channel, failing its HTTP/2 handshake)."""
    accepted = [0]

    async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writer.close()

    server = await asyncio.start_server(
        refuse, "127.0.0.1", port, reuse_address=True, family=socket.AF_INET
    )
    try:
        yield accepted
    finally:
        server.close()
        await server.wait_closed()


async def _call(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except grpc.RpcError as exc:
        assert grpc.StatusCode.UNAVAILABLE == exc.code(), exc
        return False
    return True


@pytest.mark.asyncio
async def test_restarted_peer_is_used_within_a_second() -> None:
    """While a peer is down the channel retries at least every ~1 s, and calls succeed
    within 15 attempts spaced 100 ms once it is back."""
    first = _server(0)
    port = await first.start()
    channel = open_channel(f"127.0.0.1:{port}", timeout=1.0, intercepted=False)
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        assert await _call(stub)
        await first.stop(0)
        async with _refusing_listener(port) as attempts:
            for _ in range(round(DOWN_SECONDS / CALL_SPACING)):
                await _call(stub)
                await asyncio.sleep(CALL_SPACING)
        # Default backoff: attempts at ~0, 1, 2.6, 5.2 s (at most 4 in 6 s); capped at
        # 1 s: 0.1, 0.26, 0.5, 0.9, 1.5, 2.5, 3.5 ... (about 9).
        assert attempts[0] >= 6, f"only {attempts[0]} reconnect attempts in {DOWN_SECONDS} s"
        second = _server(port)
        await second.start()
        try:
            outcomes = []
            for _ in range(15):
                outcomes.append(await _call(stub))
                if outcomes[-1]:
                    break
                await asyncio.sleep(CALL_SPACING)
            assert True is outcomes[-1], f"still UNAVAILABLE after {len(outcomes)} attempts"
        finally:
            await second.stop(0)
    finally:
        await channel.close(None)
