"""On gRPC, a retry wait rides in google.rpc.RetryInfo and a bad field in google.rpc.BadRequest
(beside the one ErrorInfo); through the gateway, REST and WebSocket keep their own shapes."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from tests.api.conftest import RestFactory

AS = auth_service_pb2


def _standard_details(error: grpc.aio.AioRpcError) -> list[object]:
    """The status's details, unpacked: ErrorInfo, RetryInfo, BadRequest, in order."""
    raw = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    found: list[object] = []
    for detail in status_pb2.Status.FromString(raw).details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.BadRequest,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found.append(message)
    return found


async def _failed(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_rate_limited_status_carries_retry_info(rest_system: RestFactory) -> None:
    """A gRPC Login past its limit is RATE_LIMITED with a RetryInfo delay (not in ErrorInfo)."""
    async with rest_system(MINITG_RATE_LOGIN="2/60") as (system, _):
        stub = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
        request = AS.LoginRequest(email="who@example.org", password="wrong password")
        for _ in range(2):
            await _failed(stub.Login(request))
        error = await _failed(stub.Login(request))
    info, retry = _standard_details(error)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED == error.code()
    assert ("RATE_LIMITED", "minitg.dev", {}) == (info.reason, info.domain, dict(info.metadata))  # type: ignore[attr-defined]
    assert 1_000 <= retry.retry_delay.ToMilliseconds() <= 60_000  # type: ignore[attr-defined]


async def test_invalid_field_status_carries_bad_request(rest_system: RestFactory) -> None:
    """A gRPC Register with a bad email is INVALID_FIELD with a BadRequest naming email."""
    async with rest_system() as (system, _):
        stub = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
        request = AS.RegisterRequest(
            email="not-an-email", password="long enough pw", display_name="V"
        )
        error = await _failed(stub.Register(request))
    info, bad = _standard_details(error)
    assert grpc.StatusCode.INVALID_ARGUMENT == error.code()
    assert ("INVALID_FIELD", {}) == (info.reason, dict(info.metadata))  # type: ignore[attr-defined]
    violations = bad.field_violations  # type: ignore[attr-defined]
    assert ["email"] == [v.field for v in violations]
    assert error.details() == violations[0].description


async def test_rest_keeps_field_and_retry_after_in_metadata(rest_system: RestFactory) -> None:
    """Through REST the same failures keep metadata field / retry_after_ms and Retry-After."""
    async with rest_system(MINITG_RATE_LOGIN="1/60") as (_, rest):
        invalid = await rest.register("v", email="not-an-email")
        await rest.login("who@example.org", "wrong password")
        limited = await rest.login("who@example.org", "wrong password")
    assert (422, {"field": "email"}) == (invalid.status, invalid.body["error"]["metadata"])
    assert 429 == limited.status
    retry_ms = int(limited.body["error"]["metadata"]["retry_after_ms"])
    assert -(-retry_ms // 1000) == int(limited.headers["Retry-After"])
