"""Domain errors and their one intermediate form, ``ErrorDetails``.

A domain error carries its gRPC status code, a ``Reason`` from the catalogue
(``svckit.reasons``, the table of ``proto/README.md``) and optional metadata. One function,
``error_details``, turns ANY exception (a domain error, a failed downstream gRPC call, a
storage, bus or hot-state outage, a bug) into ``ErrorDetails``; the three transports only
render that: ``to_grpc_status`` (a rich gRPC status), ``gateway.middleware`` (the HTTP JSON
error) and ``gateway.ws_dispatch.error_frame`` (the WebSocket Error frame). The gateway
reads a rich status back with ``details_from_rpc_error``.

On the gRPC wire a retry delay rides in ``google.rpc.RetryInfo`` and an INVALID_FIELD's
field path in ``google.rpc.BadRequest``, not in ``ErrorInfo.metadata``; ``ErrorDetails``
(and so REST and WebSocket) carries both as metadata ``retry_after_ms`` and ``field``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from svckit.ports import BusError, StorageError
from svckit.reasons import HTTP_STATUS_BY_REASON, Reason

log = logging.getLogger("minitg.errors")

ERROR_DOMAIN = "minitg.dev"
_DETAILS_KEY = "grpc-status-details-bin"
# Metadata keys that ride in the standard details on the gRPC wire, not in ErrorInfo.
RETRY_AFTER_KEY, FIELD_KEY = "retry_after_ms", "field"

# gRPC code -> HTTP status, as Google's API design guide maps them; for a reason the
# catalogue does not know (a newer service's, or a bare status from the gRPC runtime).
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


class DomainError(Exception):
    """Base of every error a service raises on purpose.

    A ``reason=`` from the catalogue also sets the code (a reason has exactly one); a plain
    string (a downstream service's reason passed through) keeps the class's code.
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = Reason.INTERNAL

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
            if isinstance(reason, Reason):
                self.code = reason.code
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = Reason.MALFORMED_REQUEST


class InvalidField(InvalidArgument):
    """One field failed validation; its path rides in metadata ``field`` (a
    ``google.rpc.BadRequest`` field violation on the gRPC wire)."""

    reason = Reason.INVALID_FIELD

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message, metadata={FIELD_KEY: field_name})


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = Reason.TOKEN_INVALID


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = Reason.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    reason = Reason.NOT_FOUND


class AlreadyExists(DomainError):
    """A family: raised as a subclass or with a ``reason=`` (``EMAIL_TAKEN``, ...)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """A family: raised as a subclass (``CHAT_FULL``, ``GROUP_CHAT_REQUIRED``)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class RateLimited(DomainError):
    """Too many requests; ``retry_after`` seconds until one would be allowed (metadata
    ``retry_after_ms``; a ``google.rpc.RetryInfo`` on the gRPC wire)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = Reason.RATE_LIMITED

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, metadata={RETRY_AFTER_KEY: _millis(retry_after)})
        self.retry_after = retry_after


# The retry hint of an outage answer (REST Retry-After, WebSocket retry_after_ms): a
# restarting Redis or PostgreSQL is usually back within a second or two, and clients back
# off exponentially from there.
OUTAGE_RETRY_AFTER_SECONDS = 1.0


class Unavailable(DomainError):
    """A dependency is down; retrying later may help (after ``retry_after`` seconds, when
    given: it rides in metadata ``retry_after_ms`` like RATE_LIMITED's)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = Reason.UNAVAILABLE

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
            extra[RETRY_AFTER_KEY] = _millis(retry_after)
        super().__init__(message, reason=reason, metadata=extra)


def _millis(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


def as_domain_error(exc: BaseException) -> DomainError | None:
    """``exc`` as the error a caller should see, or None for a bug (INTERNAL).

    A backend port's outage (a retryable ``StorageError`` or ``BusError``: the database or
    the broker unreachable, busy or closing) is UNAVAILABLE with a retry hint wherever it
    escapes a request, never INTERNAL: it is not a fault of this code, and clients retry it.
    (Redis raises ``HotStateUnavailable``, already an ``Unavailable``.)
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


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """A failed call as every transport renders it: code, reason, message, metadata
    (``retry_after_ms`` and ``field`` included)."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_BY_REASON.get(self.reason) or HTTP_STATUS.get(self.code, 500)

    @property
    def retryable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    @property
    def retry_after_ms(self) -> int:
        """The wait a retry should honour, in ms; 0 when not known."""
        value = self.metadata.get(RETRY_AFTER_KEY, "")
        return int(value) if value.isdigit() else 0

    @classmethod
    def for_reason(
        cls, reason: Reason, message: str, metadata: Mapping[str, str] | None = None
    ) -> ErrorDetails:
        """An error of ``reason`` with the code the catalogue gives it."""
        return cls(reason.code, reason, message, metadata or {})

    @classmethod
    def of(cls, error: DomainError) -> ErrorDetails:
        return cls(error.code, error.reason, _shown(error.code, error.message), error.metadata)


INTERNAL_ERROR = ErrorDetails(grpc.StatusCode.INTERNAL, Reason.INTERNAL, "internal error")


def _shown(code: grpc.StatusCode, message: str) -> str:
    # A bug's message may name internals (SQL, paths): callers only learn that it was one.
    return "internal error" if code == grpc.StatusCode.INTERNAL else message


def error_details(exc: BaseException, where: str, *, relay: bool = False) -> ErrorDetails:
    """THE mapping of any exception to what the caller is told (``where`` names the call
    for the log: ``POST /v1/chats``, ``chat.v1.ChatService/SendMessage``).

    A domain error keeps its code, reason and metadata; an outage is UNAVAILABLE
    (``as_domain_error``); ``NotImplementedError`` (a generated servicer's default) is
    UNIMPLEMENTED; anything else is a bug: logged here, once, with its traceback, and
    INTERNAL without its message. A failed downstream gRPC call keeps its status when this
    process is a ``relay`` of the caller's request (the gateway: the answer is the
    caller's, e.g. its token refused); in a service it is this service's own call, so only
    UNAVAILABLE and DEADLINE_EXCEEDED (retry later) pass, and the rest is a bug here.
    """
    if isinstance(exc, grpc.aio.AioRpcError):
        details = details_from_rpc_error(exc)
        if relay or details.retryable:
            return details
    else:
        error = as_domain_error(exc)
        if error is not None:
            return ErrorDetails.of(error)
        if isinstance(exc, NotImplementedError):
            message = f"{where} is not implemented"
            return ErrorDetails(grpc.StatusCode.UNIMPLEMENTED, Reason.UNIMPLEMENTED, message)
    log.error("unhandled error in %s", where, exc_info=exc)
    return INTERNAL_ERROR


def to_grpc_status(error: DomainError | ErrorDetails) -> grpc.Status:
    """The rich status for ``error``: one ``ErrorInfo`` (domain, reason, metadata), plus a
    ``RetryInfo`` when a retry delay is known and a ``BadRequest`` naming the field of an
    INVALID_FIELD; those two facts are not repeated in ``ErrorInfo.metadata``."""
    details = error if isinstance(error, ErrorDetails) else ErrorDetails.of(error)
    metadata = dict(details.metadata)
    retry_ms = metadata.pop(RETRY_AFTER_KEY, "")
    field_path = metadata.pop(FIELD_KEY, "")
    info = error_details_pb2.ErrorInfo(
        reason=details.reason, domain=ERROR_DOMAIN, metadata=metadata
    )
    packed = [_packed(info)]
    if retry_ms.isdigit():
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(retry_ms))
        packed.append(_packed(retry))
    if field_path:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=field_path, description=details.message
        )
        packed.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    proto = status_pb2.Status(code=details.code.value[0], message=details.message, details=packed)
    return rpc_status.to_status(proto)


def status_for(
    code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str] | None = None
) -> grpc.Status:
    """A rich gRPC status built from its parts (see ``to_grpc_status``)."""
    return to_grpc_status(ErrorDetails(code, reason, message, metadata or {}))


def _packed(detail: Any) -> any_pb2.Any:
    wrapped = any_pb2.Any()
    wrapped.Pack(detail)
    return wrapped


def details_from_rpc_error(error: grpc.aio.AioRpcError) -> ErrorDetails:
    """Read a failed call's rich status back (``RetryInfo`` and ``BadRequest`` become
    metadata ``retry_after_ms`` and ``field``); without ``ErrorInfo``, the bare code."""
    code = error.code()
    trailing: Any = error.trailing_metadata() or ()
    for key, value in trailing:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            details = _from_status(code, status_pb2.Status.FromString(value))
            if details is not None:
                return details
    return ErrorDetails(code, default_reason(code), _shown(code, error.details() or code.name))


def _from_status(code: grpc.StatusCode, status: status_pb2.Status) -> ErrorDetails | None:
    info, metadata = None, {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            metadata[RETRY_AFTER_KEY] = str(retry.retry_delay.ToMilliseconds())
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                metadata[FIELD_KEY] = bad.field_violations[0].field
    if info is None:
        return None
    return ErrorDetails(
        code, info.reason, _shown(code, status.message), dict(info.metadata) | metadata
    )


def default_reason(code: grpc.StatusCode) -> str:
    """The reason used when a status carries no ErrorInfo (e.g. from grpc itself)."""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Reason.TOKEN_INVALID
    return str(code.name)
