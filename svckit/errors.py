"""Domain errors and their wire forms.

A domain error carries its gRPC status code, an UPPER_SNAKE reason (``google.rpc.ErrorInfo``)
and optional metadata. One server interceptor turns it into a rich gRPC status; the gateway
turns a rich status back into ``ErrorDetails`` and then into an HTTP JSON error or a WebSocket
Error frame. The table of reasons is ``proto/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from svckit.ports import BusError, StorageError

ERROR_DOMAIN = "minitg.dev"
_DETAILS_KEY = "grpc-status-details-bin"

# gRPC code -> HTTP status, as Google's API design guide maps them.
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# Reasons whose HTTP status differs from their gRPC code's default.
HTTP_STATUS_BY_REASON: Mapping[str, int] = {
    "INVALID_FIELD": 422,
    "CHAT_FULL": 409,
    "GROUP_CHAT_REQUIRED": 409,
}


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "MALFORMED_REQUEST"


class InvalidField(InvalidArgument):
    """One field failed validation; its name rides in metadata ``field``."""

    reason = "INVALID_FIELD"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message, metadata={"field": field_name})


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "TOKEN_INVALID"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class RateLimited(DomainError):
    """Too many requests; ``retry_after`` seconds until one would be allowed."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, metadata={"retry_after_ms": str(max(1, int(retry_after * 1000)))})
        self.retry_after = retry_after


# The retry hint of an outage answer (REST Retry-After, WebSocket retry_after_ms): a
# restarting Redis or PostgreSQL is usually back within a second or two, and clients back
# off exponentially from there.
OUTAGE_RETRY_AFTER_SECONDS = 1.0


class Unavailable(DomainError):
    """A dependency is down; retrying later may help (after ``retry_after`` seconds, when
    given: it rides in metadata ``retry_after_ms`` like RATE_LIMITED's)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        extra = dict(metadata or {})
        if retry_after is not None:
            extra["retry_after_ms"] = str(max(1, int(retry_after * 1000)))
        super().__init__(message, reason=reason, metadata=extra)


def as_domain_error(exc: BaseException) -> DomainError | None:
    """``exc`` as the error a caller should see, or None for a bug (INTERNAL).

    A backend port's outage (a retryable ``StorageError`` or ``BusError``: the database or
    the broker unreachable, busy or closing) is UNAVAILABLE with a retry hint wherever it
    escapes a request, never INTERNAL: it is not a fault of this code, and clients retry it.
    """
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, StorageError | BusError) and exc.retryable:
        what = "database" if isinstance(exc, StorageError) else "message broker"
        error = Unavailable(
            f"the {what} is unavailable; retry shortly", retry_after=OUTAGE_RETRY_AFTER_SECONDS
        )
        error.__cause__ = exc
        return error
    return None


def to_grpc_status(error: DomainError) -> grpc.Status:
    """The rich status (code, message, ErrorInfo) for ``error``."""
    return status_for(error.code, error.reason, error.message, error.metadata)


def status_for(
    code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str] | None = None
) -> grpc.Status:
    """Build a rich gRPC status carrying one ``google.rpc.ErrorInfo``."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})
    detail = any_pb2.Any()
    detail.Pack(info)
    proto = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return rpc_status.to_status(proto)


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """A failed call as the gateway sees it: code, reason, message, metadata."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_BY_REASON.get(self.reason, HTTP_STATUS.get(self.code, 500))

    @property
    def retryable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def details_from_rpc_error(error: grpc.aio.AioRpcError) -> ErrorDetails:
    """Read the ErrorInfo out of a failed call; fall back to the bare status code."""
    code = error.code()
    message = error.details() or code.name
    trailing: Any = error.trailing_metadata() or ()
    for key, value in trailing:
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return ErrorDetails(code, info.reason, status.message, dict(info.metadata))
    return ErrorDetails(code, default_reason(code), message)


def default_reason(code: grpc.StatusCode) -> str:
    """The reason used when a status carries no ErrorInfo (e.g. from grpc itself)."""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return "TOKEN_INVALID"
    return str(code.name)
