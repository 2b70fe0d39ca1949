"""Domain errors map to rich gRPC statuses and to HTTP statuses."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from svckit.errors import ErrorDetails, InvalidField, RateLimited, to_grpc_status


def _error_info(status: grpc.Status) -> error_details_pb2.ErrorInfo:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    proto = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert proto.details[0].Unpack(info)
    return info


def test_invalid_field_carries_reason_and_field() -> None:
    """INVALID_FIELD rides as ErrorInfo with the field name in metadata."""
    status = to_grpc_status(InvalidField("email", "not an email address"))
    info = _error_info(status)
    assert grpc.StatusCode.INVALID_ARGUMENT == status.code
    assert info.reason == "INVALID_FIELD"
    assert info.domain == "minitg.dev"
    assert dict(info.metadata) == {"field": "email"}


def test_rate_limited_carries_retry_after() -> None:
    """RATE_LIMITED statuses say when to retry, in milliseconds."""
    info = _error_info(to_grpc_status(RateLimited("slow down", retry_after=1.5)))
    assert dict(info.metadata) == {"retry_after_ms": "1500"}


def test_http_status_mapping() -> None:
    """Field errors are 422, other invalid arguments 400, rate limits 429."""
    assert ErrorDetails(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "").http_status == 422
    assert (
        ErrorDetails(grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", "").http_status == 400
    )
    assert ErrorDetails(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", "").http_status == 429
    assert ErrorDetails(grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", "").retryable
