"""Any exception maps to one ErrorDetails; gRPC renders it as ErrorInfo plus the standard
RetryInfo and BadRequest details, and reads them back; HTTP statuses come from the catalogue."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from svckit.errors import (
    DomainError,
    ErrorDetails,
    InvalidField,
    NotFound,
    RateLimited,
    details_from_rpc_error,
    error_details,
    to_grpc_status,
)
from svckit.ports import BusUnavailable, StorageUnavailable
from svckit.reasons import Reason


def _details_of(status: grpc.Status) -> list[object]:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    unpacked: list[object] = []
    for detail in status_pb2.Status.FromString(raw).details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.BadRequest,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


def _as_rpc_error(status: grpc.Status) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata(*status.trailing_metadata)
    return grpc.aio.AioRpcError(status.code, grpc.aio.Metadata(), trailing, status.details)


def test_invalid_field_carries_error_info_and_bad_request() -> None:
    """INVALID_FIELD is one ErrorInfo (no field in its metadata) plus a BadRequest violation."""
    status = to_grpc_status(InvalidField("email", "not an email address"))
    info, bad = _details_of(status)
    assert grpc.StatusCode.INVALID_ARGUMENT == status.code
    assert error_details_pb2.ErrorInfo(reason="INVALID_FIELD", domain="minitg.dev") == info
    violation = error_details_pb2.BadRequest.FieldViolation(
        field="email", description="not an email address"
    )
    assert error_details_pb2.BadRequest(field_violations=[violation]) == bad


def test_rate_limited_carries_retry_info() -> None:
    """RATE_LIMITED carries its wait as a RetryInfo, not in ErrorInfo.metadata."""
    info, retry = _details_of(to_grpc_status(RateLimited("slow down", retry_after=1.5)))
    assert {} == dict(info.metadata)  # type: ignore[attr-defined]
    assert 1500 == retry.retry_delay.ToMilliseconds()  # type: ignore[attr-defined]


def test_a_rich_status_reads_back_as_the_same_details() -> None:
    """RetryInfo and BadRequest come back as metadata retry_after_ms and field."""
    limited = RateLimited("slow down", retry_after=0.25)
    invalid = InvalidField("items[2].body.text", "too long")
    missing = NotFound("no user", reason=Reason.USER_NOT_FOUND, metadata={"user_id": "7"})
    for error in (limited, invalid, missing):
        read = details_from_rpc_error(_as_rpc_error(to_grpc_status(error)))
        assert ErrorDetails.of(error) == read


def test_bare_status_falls_back_to_the_code() -> None:
    """A status with no ErrorInfo has the code's name as reason (UNAUTHENTICATED: TOKEN_INVALID)."""
    bare = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata(), "no"
    )
    assert Reason.TOKEN_INVALID == details_from_rpc_error(bare).reason


def test_error_details_maps_every_kind_of_exception(caplog: pytest.LogCaptureFixture) -> None:
    """Domain errors keep their reason, outages are UNAVAILABLE with a retry hint, a missing
    method UNIMPLEMENTED, and a bug INTERNAL without its message, logged once."""
    with caplog.at_level(logging.ERROR, logger="minitg.errors"):
        domain = error_details(NotFound("gone", reason=Reason.CHAT_NOT_FOUND), "X/Y")
        storage = error_details(StorageUnavailable("pg down"), "X/Y")
        bus = error_details(BusUnavailable("mq down"), "X/Y")
        missing = error_details(NotImplementedError(), "X/Y")
        bug = error_details(RuntimeError("secret table name"), "X/Y")
    assert ErrorDetails(grpc.StatusCode.NOT_FOUND, "CHAT_NOT_FOUND", "gone") == domain
    assert ("UNAVAILABLE", "1000") == (storage.reason, storage.metadata["retry_after_ms"])
    assert (grpc.StatusCode.UNAVAILABLE, 503) == (bus.code, bus.http_status)
    assert (grpc.StatusCode.UNIMPLEMENTED, "UNIMPLEMENTED") == (missing.code, missing.reason)
    assert ErrorDetails(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error") == bug
    assert 1 == len(caplog.records)
    assert caplog.records[0].exc_info is not None


def test_a_catalogue_reason_sets_the_code() -> None:
    """DomainError(reason=Reason.X) fails with X's code, whatever the class's default."""
    error = DomainError("no such chat", reason=Reason.CHAT_NOT_FOUND)
    assert grpc.StatusCode.NOT_FOUND == error.code
    passed = DomainError("newer", reason="SOME_NEWER_REASON")
    assert grpc.StatusCode.INTERNAL == passed.code


def test_http_status_mapping() -> None:
    """Catalogue reasons use their own HTTP status; unknown reasons their code's."""
    assert 422 == ErrorDetails.for_reason(Reason.INVALID_FIELD, "").http_status
    assert 400 == ErrorDetails.for_reason(Reason.MALFORMED_REQUEST, "").http_status
    assert 409 == ErrorDetails.for_reason(Reason.CHAT_FULL, "").http_status
    assert 429 == ErrorDetails.for_reason(Reason.RATE_LIMITED, "").http_status
    assert 409 == ErrorDetails(grpc.StatusCode.ABORTED, "SOMETHING_NEW", "").http_status
    assert ErrorDetails.for_reason(Reason.UNAVAILABLE, "").retryable


def test_a_downstream_failure_passes_only_through_a_relay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gateway (relay) passes a service's status on; in a service, a downstream refusal
    is INTERNAL (logged) and only UNAVAILABLE / DEADLINE_EXCEEDED pass."""
    refused = _as_rpc_error(to_grpc_status(DomainError("bad", reason=Reason.TOKEN_INVALID)))
    down = _as_rpc_error(to_grpc_status(ErrorDetails.for_reason(Reason.UNAVAILABLE, "down")))
    with caplog.at_level(logging.ERROR, logger="minitg.errors"):
        relayed = error_details(refused, "GET /v1/me", relay=True)
        own = error_details(refused, "chat.v1.ChatService/GetChat")
        unavailable = error_details(down, "chat.v1.ChatService/GetChat")
    assert ("TOKEN_INVALID", "bad") == (relayed.reason, relayed.message)
    assert "INTERNAL" == own.reason
    assert "UNAVAILABLE" == unavailable.reason
    assert 1 == len(caplog.records)


def test_a_websocket_request_hit_by_an_outage_gets_unavailable() -> None:
    """The WebSocket dispatcher maps through error_details: an outage is a retryable
    UNAVAILABLE Error with retry_after_ms, not INTERNAL."""
    from minitg.gateway.v1 import frames_pb2

    from gateway.ws_dispatch import _details_of, error_frame

    frame = frames_pb2.ServerFrame.FromString(error_frame(3, _details_of(BusUnavailable("x"))))
    error = frame.error
    assert ("UNAVAILABLE", True, 1000, {}) == (
        error.reason,
        error.retryable,
        error.retry_after_ms,
        dict(error.metadata),
    )
