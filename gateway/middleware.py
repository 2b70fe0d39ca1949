"""HTTP middleware: request ids, RED metrics and the one place errors become JSON.

Every error the gateway answers has the body ``{"error": {"code", "message"}}``; a
domain failure from a service arrives as a rich gRPC status and keeps its reason; anything
unexpected is logged once and becomes 500 INTERNAL without a stack trace in the body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from svckit import metrics
from svckit.errors import ErrorDetails, error_details
from svckit.logs import REQUEST_ID_HEADER, bind_request_id
from svckit.reasons import Reason

log = logging.getLogger("minitg.gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The web layer's own refusals (aiohttp raises them before a handler runs). Any other
# 4xx it might raise is the client's request being unusable: MALFORMED_REQUEST (400).
_HTTP_REASONS: Mapping[int, Reason] = {
    400: Reason.MALFORMED_REQUEST,
    401: Reason.TOKEN_MISSING,
    403: Reason.PERMISSION_DENIED,
    404: Reason.NOT_FOUND,
    405: Reason.METHOD_NOT_ALLOWED,
    413: Reason.REQUEST_TOO_LARGE,
    415: Reason.UNSUPPORTED_MEDIA_TYPE,
}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> web.Response:
    """The one JSON error shape of the HTTP API (``metadata`` only when non-empty)."""
    error: dict[str, object] = {"code": code, "message": message}
    if metadata:
        error["metadata"] = dict(metadata)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="minitg"')
    return web.json_response({"error": error}, status=status, headers=all_headers)


def details_response(
    details: ErrorDetails, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Render ``details`` as the HTTP answer (with Retry-After on 429 and 503 when the retry
    time is known: a rate limit's wait, or a dependency outage's hint)."""
    all_headers = dict(headers or {})
    retry_ms = details.retry_after_ms
    if retry_ms and details.http_status in (429, 503):
        all_headers["Retry-After"] = str(max(1, -(-retry_ms // 1000)))
    return error_response(
        details.http_status, details.reason, details.message, all_headers, details.metadata
    )


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id, time the request, and map every failure to a JSON error."""
    rid = bind_request_id(request.headers.get(REQUEST_ID_HEADER))
    started = time.perf_counter()
    route = request.match_info.route.resource
    template = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        response = await _answer(request, handler)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = rid
        return response
    finally:
        metrics.HTTP_REQUESTS.labels(template, request.method, str(status)).inc()
        metrics.HTTP_SECONDS.labels(template, request.method).observe(time.perf_counter() - started)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status < 500:
            reason = _HTTP_REASONS.get(exc.status, Reason.MALFORMED_REQUEST)
            details = ErrorDetails.for_reason(reason, exc.reason)
            return details_response(details, _kept_headers(exc))
        failure: Exception = exc
    except Exception as exc:
        failure = exc
    # The gateway relays the client's request: a service's refusal is the client's answer.
    return details_response(error_details(failure, f"{request.method} {request.path}", relay=True))


# Every answer is JSON or a WebSocket, never a page: nothing may sniff, frame or embed it,
# and no Referer leaks a token from a URL (?access_token= on browser upgrades).
SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
# The one page the gateway serves, /docs (gateway/static/): its own script, style and the
# OpenAPI document, nothing else, from nowhere else.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'"
)
SERVER_NAME = "minitg"  # not aiohttp's "Python/3.x aiohttp/3.y": no versions for scanners


async def harden_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs after aiohttp set its own headers, so ours win.

    API answers carry tokens (register, login, refresh) or private data, so no cache may
    keep any of them: ``Cache-Control: no-store`` unless a handler chose otherwise.
    """
    response.headers["Server"] = SERVER_NAME
    if isinstance(response, web.WebSocketResponse):
        # A 101 carries no document to sniff, frame or cache, and its headers live as
        # long as the socket: five more per socket were ~1 KB of a gateway's memory per
        # connection (load/README.md, 2026-12-07). A refused upgrade is a JSON answer and
        # gets them all.
        return
    response.headers.update(SECURITY_HEADERS)
    if request.path == "/docs" or request.path.startswith("/docs/"):
        response.headers["Content-Security-Policy"] = DOCS_CSP
    if request.path.startswith("/v1/"):
        response.headers.setdefault("Cache-Control", "no-store")


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


class ClientProtocolErrors(logging.Filter):
    """Turns aiohttp's ERROR-with-traceback for an unparseable request (a bad request
    line, a header over 8 KiB, a broken chunk: the client's fault, already answered 400)
    into a one-line WARNING: anyone on the internet can send those, and they must neither
    fill the log with tracebacks nor trip alerts on ERROR records."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            first_line = (str(exc.message).splitlines() or [""])[0]
            record.msg, record.args = f"{record.getMessage()}: {first_line}", None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_protocol_errors() -> None:
    """Install ``ClientProtocolErrors`` on aiohttp's server logger (once per process)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientProtocolErrors) for f in server_log.filters):
        server_log.addFilter(ClientProtocolErrors())
