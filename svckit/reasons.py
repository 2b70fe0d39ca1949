"""The error catalogue: every reason a minitg error can carry, with its gRPC code and HTTP status.

This enum is the table "Reasons" of ``proto/README.md`` in code (a unit test keeps the two
equal, meanings included). Code raises ``Reason.X``, never a string literal, so a typo is
an AttributeError at import rather than an undocumented reason on the wire. A reason from a
newer service that this enum does not know still passes through as a plain ``str``.
"""

from __future__ import annotations

from enum import StrEnum

import grpc

_C = grpc.StatusCode


class Reason(StrEnum):
    """An ``ErrorInfo.reason`` (its value is its name) with the table's other columns."""

    code: grpc.StatusCode
    http_status: int
    meaning: str

    def __new__(cls, value: str, code: grpc.StatusCode, http_status: int, meaning: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.code, member.http_status, member.meaning = code, http_status, meaning
        return member

    MALFORMED_REQUEST = (
        "MALFORMED_REQUEST", _C.INVALID_ARGUMENT, 400,
        "The request could not be decoded (bad JSON or protobuf, wrong types, JSON nested "
        "deeper than 32 levels, a lone UTF-16 surrogate, `NaN`). Client bug.",
    )  # fmt: skip
    INVALID_FIELD = (
        "INVALID_FIELD", _C.INVALID_ARGUMENT, 422,
        "A field broke a documented limit; metadata `field` (and the gRPC status's "
        "`BadRequest`) names it. Fix the input.",
    )  # fmt: skip
    TOKEN_MISSING = (
        "TOKEN_MISSING", _C.UNAUTHENTICATED, 401,
        "No `authorization` was sent. Sign in, or send the token.",
    )  # fmt: skip
    TOKEN_INVALID = (
        "TOKEN_INVALID", _C.UNAUTHENTICATED, 401,
        "The access token is malformed, has a bad signature or an unknown `kid`. Refresh; "
        "if that fails, sign in.",
    )  # fmt: skip
    TOKEN_EXPIRED = (
        "TOKEN_EXPIRED", _C.UNAUTHENTICATED, 401,
        "The access token's `exp` has passed. Call `Refresh`, then retry once.",
    )  # fmt: skip
    SESSION_REVOKED = (
        "SESSION_REVOKED", _C.UNAUTHENTICATED, 401,
        "The session was logged out or revoked (WebSocket close 4001). Sign in again.",
    )  # fmt: skip
    INVALID_CREDENTIALS = (
        "INVALID_CREDENTIALS", _C.UNAUTHENTICATED, 401,
        "`Login`: unknown email or wrong password (deliberately not told apart).",
    )  # fmt: skip
    REFRESH_TOKEN_INVALID = (
        "REFRESH_TOKEN_INVALID", _C.UNAUTHENTICATED, 401,
        "`Refresh`: the refresh token is unknown, malformed or expired. Sign in again.",
    )  # fmt: skip
    REFRESH_TOKEN_REUSED = (
        "REFRESH_TOKEN_REUSED", _C.UNAUTHENTICATED, 401,
        "`Refresh`: an already rotated refresh token was presented outside the grace "
        "period, a second time within it, or after its successor was used; the whole "
        "session is now revoked. Sign in again.",
    )  # fmt: skip
    PERMISSION_DENIED = (
        "PERMISSION_DENIED", _C.PERMISSION_DENIED, 403,
        "Signed in, but not allowed: someone else's message, not an admin, a user token on "
        "a service-only RPC, another session's id.",
    )  # fmt: skip
    EDIT_WINDOW_EXPIRED = (
        "EDIT_WINDOW_EXPIRED", _C.PERMISSION_DENIED, 403,
        "`EditMessage` after the edit window (48 h by default).",
    )  # fmt: skip
    NOT_FOUND = (
        "NOT_FOUND", _C.NOT_FOUND, 404,
        "An unknown HTTP route, or a resource with no more specific reason.",
    )  # fmt: skip
    CHAT_NOT_FOUND = (
        "CHAT_NOT_FOUND", _C.NOT_FOUND, 404,
        "No such chat, or the caller is not a member (deliberately not told apart).",
    )  # fmt: skip
    USER_NOT_FOUND = (
        "USER_NOT_FOUND", _C.NOT_FOUND, 404,
        "No such user; metadata `user_id` when the request named several.",
    )  # fmt: skip
    MESSAGE_NOT_FOUND = (
        "MESSAGE_NOT_FOUND", _C.NOT_FOUND, 404,
        "No such message in that chat, or it was deleted.",
    )  # fmt: skip
    SESSION_NOT_FOUND = (
        "SESSION_NOT_FOUND", _C.NOT_FOUND, 404,
        "No such session of the caller's account.",
    )  # fmt: skip
    EMAIL_TAKEN = (
        "EMAIL_TAKEN", _C.ALREADY_EXISTS, 409,
        "`Register`: the address already has an account.",
    )  # fmt: skip
    CLIENT_MSG_ID_REUSED = (
        "CLIENT_MSG_ID_REUSED", _C.ALREADY_EXISTS, 409,
        "`SendMessage`: this `client_msg_id` was already used for a different chat or body. "
        "Client bug: use a fresh id per message.",
    )  # fmt: skip
    CLIENT_REQUEST_ID_REUSED = (
        "CLIENT_REQUEST_ID_REUSED", _C.ALREADY_EXISTS, 409,
        "`CreateChat`: this `client_request_id` was already used with different fields.",
    )  # fmt: skip
    CHAT_FULL = (
        "CHAT_FULL", _C.FAILED_PRECONDITION, 409,
        "The group would exceed the group size limit (200 members by default). Nothing was "
        "added.",
    )  # fmt: skip
    GROUP_CHAT_REQUIRED = (
        "GROUP_CHAT_REQUIRED", _C.FAILED_PRECONDITION, 409,
        "`InviteMembers` or `LeaveChat` on a direct chat.",
    )  # fmt: skip
    RATE_LIMITED = (
        "RATE_LIMITED", _C.RESOURCE_EXHAUSTED, 429,
        "Too many requests (or, on a WebSocket, too many in flight); metadata "
        "`retry_after_ms` (and the gRPC status's `RetryInfo`). Wait that long, then retry.",
    )  # fmt: skip
    CANCELLED = (
        "CANCELLED", _C.CANCELLED, 499,
        "The caller cancelled the call.",
    )  # fmt: skip
    INTERNAL = (
        "INTERNAL", _C.INTERNAL, 500,
        "A server bug; logged with the request id. Do not retry automatically.",
    )  # fmt: skip
    UNIMPLEMENTED = (
        "UNIMPLEMENTED", _C.UNIMPLEMENTED, 501,
        "The server does not know this RPC (an older server).",
    )  # fmt: skip
    UNAVAILABLE = (
        "UNAVAILABLE", _C.UNAVAILABLE, 503,
        "A service or its storage is briefly unreachable; metadata `retry_after_ms` when "
        "the wait is known. Retry with exponential backoff and jitter.",
    )  # fmt: skip
    DEADLINE_EXCEEDED = (
        "DEADLINE_EXCEEDED", _C.DEADLINE_EXCEEDED, 504,
        "The call ran out of time; it may or may not have taken effect. Retry (idempotent "
        "requests only, see below).",
    )  # fmt: skip
    METHOD_NOT_ALLOWED = (
        "METHOD_NOT_ALLOWED", _C.UNIMPLEMENTED, 405,
        "HTTP only: the route exists but not with this method (header `Allow` lists the "
        "methods it has).",
    )  # fmt: skip
    REQUEST_TOO_LARGE = (
        "REQUEST_TOO_LARGE", _C.RESOURCE_EXHAUSTED, 413,
        "HTTP only: the request body is larger than the gateway accepts.",
    )  # fmt: skip
    UNSUPPORTED_MEDIA_TYPE = (
        "UNSUPPORTED_MEDIA_TYPE", _C.INVALID_ARGUMENT, 415,
        "HTTP only: the body is not sent as `application/json`.",
    )  # fmt: skip
    UNKNOWN_FRAME = (
        "UNKNOWN_FRAME", _C.INVALID_ARGUMENT, 400,
        "WebSocket only: the frame decoded but had no payload this server knows, for "
        "example a newer client's request. Do not retry.",
    )  # fmt: skip


# The HTTP status of each known reason (a reason's own status wins over its code's).
HTTP_STATUS_BY_REASON: dict[str, int] = {reason.value: reason.http_status for reason in Reason}
