"""The OpenAPI 3.1 description of the gateway's HTTP API, and the page that renders it.

``GET /v1/openapi.json`` is built from the application's own route table, the proto
messages each route reads and answers (``gateway.openapi_schema``), and the table below of
what the code cannot say about itself (summary, authentication, status, error reasons).
A route without an entry here fails the unit test, as does an entry without a route, so the
document cannot drift from the code unnoticed. ``GET /docs`` serves a small static page
(``gateway/static/``) that renders the document: no CDN, it works offline.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.descriptor import Descriptor
from minitg.auth.v1 import auth_pb2
from minitg.auth.v1 import auth_service_pb2 as auth
from minitg.chat.v1 import chat_service_pb2 as chat

from gateway.openapi_comments import field_comment, rpc_comment
from gateway.openapi_schema import Schema, SchemaSet, request_body, scalar
from svckit.reasons import HTTP_STATUS_BY_REASON

OPENAPI_PATH = "/v1/openapi.json"
DOCS_PATH = "/docs"
_PAGES = web.AppKey("openapi_pages", dict[str, tuple[str, bytes]])


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one route beyond its path and method."""

    summary: str
    tag: str
    status: int = 200
    auth: bool = True
    request: Descriptor | None = None  # the request message: body (POST) or query (GET)
    required: tuple[str, ...] = ()
    response: Descriptor | str | None = None  # a message, a REST-only schema name, or none
    errors: tuple[str, ...] = ()  # error reasons besides the ones every call may meet
    description: str = ""
    extra_statuses: tuple[int, ...] = field(default=())
    rpc: Descriptor | None = None  # the request of the RPC behind a route that sends no body


_SIGN_IN = "The answer is SignIn: the OAuth 2.0 token fields plus the user."
_PAGED = "INVALID_FIELD (page_size, page_token)"

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/auth/register"): Operation(
        "Create an account and sign in (one new session)", "auth", 201, False,
        auth.RegisterRequest.DESCRIPTOR, ("email", "password", "display_name"), "SignIn",
        ("INVALID_FIELD", "EMAIL_TAKEN", "RATE_LIMITED"),
        "Rate limited per client IP (MINITG_RATE_REGISTER_PER_IP, 10/3600). Also sets the "
        "refresh_token cookie (HttpOnly; SameSite=Strict; Path=/v1/auth). " + _SIGN_IN,
    ),
    ("POST", "/v1/auth/login"): Operation(
        "Sign in with email and password (one new session)", "auth", 200, False,
        auth.LoginRequest.DESCRIPTOR, ("email", "password"), "SignIn",
        ("INVALID_FIELD", "INVALID_CREDENTIALS", "RATE_LIMITED"),
        "Rate limited per client IP and email (MINITG_RATE_LOGIN, 5/60) and per IP "
        "(MINITG_RATE_LOGIN_PER_IP, 30/60). Sets the refresh_token cookie. " + _SIGN_IN,
    ),
    ("POST", "/v1/auth/refresh"): Operation(
        "Exchange a refresh token (body or cookie) for a new pair", "auth", 200, False,
        auth.RefreshRequest.DESCRIPTOR, (), "Tokens",
        ("INVALID_FIELD", "REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "RATE_LIMITED"),
        "The body may be empty: the refresh_token cookie is used then. The token sent is "
        "rotated (single use). Rate limited per IP (MINITG_RATE_REFRESH_PER_IP, 60/60).",
    ),
    ("POST", "/v1/auth/logout"): Operation(
        "End the calling session (its WebSockets close with 4001)", "auth", 204,
        response=None, description="Clears the refresh_token cookie.",
        rpc=auth.LogoutRequest.DESCRIPTOR,
    ),
    ("GET", "/v1/auth/sessions"): Operation(
        "List the account's sessions (devices), the calling one marked current", "auth",
        request=auth.ListSessionsRequest.DESCRIPTOR,
        response=auth.ListSessionsResponse.DESCRIPTOR, errors=(_PAGED,),
    ),
    ("DELETE", "/v1/auth/sessions/{session_id}"): Operation(
        "Sign one of the account's sessions out", "auth", 204, errors=("SESSION_NOT_FOUND",),
        rpc=auth.RevokeSessionRequest.DESCRIPTOR,
    ),
    ("GET", "/.well-known/jwks.json"): Operation(
        "The public keys that verify access tokens (JWKS, RFC 7517)", "auth", auth=False,
        response=auth.GetJwksResponse.DESCRIPTOR,
        description="Cache-Control: public, max-age=300.", rpc=auth.GetJwksRequest.DESCRIPTOR,
    ),
    ("GET", "/v1/users/me"): Operation(
        "The caller's own profile, with email", "users",
        response=auth.GetUserResponse.DESCRIPTOR, rpc=auth.GetUserRequest.DESCRIPTOR,
    ),
    ("GET", "/v1/users/{user_id}"): Operation(
        "Any user's public profile (email empty unless it is the caller)", "users",
        request=auth.GetUserRequest.DESCRIPTOR, response=auth.GetUserResponse.DESCRIPTOR,
        errors=("USER_NOT_FOUND", "INVALID_FIELD"),
    ),
    ("GET", "/v1/users"): Operation(
        "Find the user with exactly this email address", "users",
        request=auth.LookupUserRequest.DESCRIPTOR, required=("email",),
        response=auth.LookupUserResponse.DESCRIPTOR,
        errors=("USER_NOT_FOUND", "INVALID_FIELD", "RATE_LIMITED"),
        description="Rate limited per user (MINITG_RATE_USER_LOOKUP, 30/60).",
    ),
    ("POST", "/v1/chats"): Operation(
        "Create a group, or get-or-create the direct chat with peer_user_id", "chats", 201,
        request=chat.CreateChatRequest.DESCRIPTOR, required=("kind",),
        response=chat.CreateChatResponse.DESCRIPTOR,
        errors=("INVALID_FIELD", "USER_NOT_FOUND", "CHAT_FULL", "CLIENT_REQUEST_ID_REUSED"),
        description="201 when created, 200 when the direct chat (or the chat of this "
        "client_request_id) already existed, then with pts 0 and pts_count 0. The calling "
        "device gets no new_chat push: count pts in by the pts rule (docs/PROTOCOL.md).",
        extra_statuses=(200,),
    ),
    ("GET", "/v1/chats"): Operation(
        "The caller's chats, most recent activity first", "chats",
        request=chat.ListChatsRequest.DESCRIPTOR, response=chat.ListChatsResponse.DESCRIPTOR,
        errors=(_PAGED,),
    ),
    ("GET", "/v1/chats/{chat_id}"): Operation(
        "One chat with its members", "chats", request=chat.GetChatRequest.DESCRIPTOR,
        response=chat.GetChatResponse.DESCRIPTOR, errors=("CHAT_NOT_FOUND", "INVALID_FIELD"),
    ),
    ("POST", "/v1/chats/{chat_id}/invite"): Operation(
        "Add members to a group", "chats", request=chat.InviteMembersRequest.DESCRIPTOR,
        required=("user_ids",), response=chat.InviteMembersResponse.DESCRIPTOR,
        errors=("CHAT_NOT_FOUND", "PERMISSION_DENIED", "USER_NOT_FOUND", "CHAT_FULL",
                "GROUP_CHAT_REQUIRED", "INVALID_FIELD"),
    ),
    ("POST", "/v1/chats/{chat_id}/leave"): Operation(
        "Leave a group", "chats", response=chat.LeaveChatResponse.DESCRIPTOR,
        errors=("CHAT_NOT_FOUND", "GROUP_CHAT_REQUIRED", "INVALID_FIELD"),
        rpc=chat.LeaveChatRequest.DESCRIPTOR,
    ),
    ("GET", "/v1/chats/{chat_id}/messages"): Operation(
        "A page of a chat's history, ascending seq", "chats",
        request=chat.GetHistoryRequest.DESCRIPTOR, response=chat.GetHistoryResponse.DESCRIPTOR,
        errors=("CHAT_NOT_FOUND", "INVALID_FIELD (page_size, page_token, anchor)"),
        description="At most one anchor of before_seq, after_seq, around_seq, or a page token.",
    ),
    ("GET", "/v1/ws"): Operation(
        "Open the WebSocket (subprotocol minitg.v1; frames in proto/minitg/gateway/v1)", "ws",
        101, response=None, errors=("RATE_LIMITED", "UNAVAILABLE"),
        description="A WebSocket upgrade, not a REST call: see docs/PROTOCOL.md section 3. "
        "Browsers may pass the token as ?access_token=.",
    ),
    ("GET", "/v1/health"): Operation(
        "Readiness: 200 when every dependency answers, 503 naming what does not", "ops",
        auth=False, response="Health", extra_statuses=(503,),
    ),
    ("GET", OPENAPI_PATH): Operation(
        "This document", "ops", auth=False, response="application/json",
    ),
    ("GET", DOCS_PATH): Operation(
        "A human-readable page rendering this document", "ops", auth=False,
        response="text/html",
    ),
    ("GET", DOCS_PATH + "/{name}"): Operation(
        "The page's script and style (docs.js, docs.css)", "ops", auth=False,
        response="text/plain", errors=("NOT_FOUND",),
    ),
}  # fmt: skip

# Shapes the REST API has that no proto message describes.
_REST_SCHEMAS: dict[str, Schema] = {
    "Tokens": {
        "type": "object",
        "description": "The TokenPair flattened into OAuth 2.0 token-response fields (RFC "
        "6749 section 5.1): expires_in is TokenPair.expires_in_seconds, refresh_expires_in "
        "is TokenPair.refresh_expires_in_seconds.",
        "properties": {
            "session_id": {"type": "string"},
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "format": "int32"},
            "refresh_expires_in": {"type": "integer", "format": "int32"},
        },
        "required": [
            "session_id", "access_token", "refresh_token", "token_type", "expires_in",
            "refresh_expires_in",
        ],
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "draining", "unavailable"]},
            "pod_id": {"type": "string"},
            "checks": {
                "type": "object", "additionalProperties": {"type": "string", "enum": ["up", "down"]}
            },
        },
        "required": ["status", "pod_id", "checks"],
    },
    "Error": {
        "type": "object",
        "description": "Every error answer. code is the reason of the table in proto/README.md.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                    "message": {"type": "string"},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    },
}  # fmt: skip

_ERROR_STATUSES = {
    400: "MALFORMED_REQUEST: the body is not one JSON object within the input rules.",
    401: "TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, SESSION_REVOKED (WWW-Authenticate).",
    413: "REQUEST_TOO_LARGE: the body is over 64 KiB.",
    422: "INVALID_FIELD: metadata.field names the field.",
    429: "RATE_LIMITED, with Retry-After.",
    503: "UNAVAILABLE: a dependency is down; Retry-After when known.",
}

DESCRIPTION = """\
minitg's HTTP API. JSON bodies are the proto3 JSON mapping of the messages in proto/
(`minitg.auth.v1`, `minitg.chat.v1`) with proto field names (snake_case) in answers;
requests accept both the proto names and the lowerCamelCase JSON names, ignore unknown
fields and treat null as the field's default. Two deviations from proto3 JSON: 64-bit
integers are printed as JSON numbers (every id minitg issues is below 2^53) and requests
accept them as numbers or decimal strings; answers print every field, defaults included.
Register, login and refresh answer OAuth 2.0 token fields instead of a nested TokenPair.
Errors are `{"error": {"code", "message", "metadata"}}` with the reasons of proto/README.md.
Real-time traffic (sending, receiving) is on the WebSocket: docs/PROTOCOL.md."""

# The HTTP status of each reason named in OPERATIONS: the catalogue's (svckit.reasons).
_REASON_STATUS = HTTP_STATUS_BY_REASON
_PATH_INTEGERS = {"chat_id", "user_id"}
_MEDIA = {"text/plain", "text/html", "application/json"}


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route ``app`` serves (``KeyError`` for a route
    OPERATIONS does not describe: the unit test names it)."""
    schemas = SchemaSet()
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes_of(app):
        operation = OPERATIONS.get((method, path))
        if operation is None:
            raise KeyError(f"{method} {path} has no entry in gateway.openapi.OPERATIONS")
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, operation, schemas)
    signed_in = {
        "description": "Tokens plus the signed-in account.",
        "allOf": [
            {"$ref": "#/components/schemas/Tokens"},
            {
                "type": "object",
                "properties": {"user": schemas.response(auth_pb2.User.DESCRIPTOR)},
                "required": ["user"],
            },
        ],
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "minitg HTTP API", "version": "v1", "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items()))
            | _REST_SCHEMAS
            | {"SignIn": signed_in},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def routes_of(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route, HEAD (aiohttp's twin of GET) left out."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if route.method != "HEAD" and path:
            found.append((route.method, path))
    return found


def _operation(method: str, path: str, op: Operation, schemas: SchemaSet) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op, schemas),
    }
    description = _description(op)
    if description:
        body["description"] = description
    body["security"] = [{"bearer": []}] if op.auth else []
    in_path = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    parameters = [_path_parameter(name) for name in in_path]
    if op.request is not None and method == "GET":
        parameters += _query_parameters(op, in_path)
    elif op.request is not None:
        schema = request_body(op.request, required=op.required, exclude=tuple(in_path))
        body["requestBody"] = {
            "required": bool(op.required),
            "content": {"application/json": {"schema": schema}},
        }
    if parameters:
        body["parameters"] = parameters
    return body


def _description(op: Operation) -> str:
    """The route's own notes, then the comment of the gRPC call it makes."""
    request = op.rpc or op.request
    name, comment = rpc_comment(request) if request is not None else ("", "")
    call = f"Calls {name}: {comment}" if name else ""
    return "\n\n".join(text for text in (op.description, call) if text)


def _operation_id(method: str, path: str) -> str:
    """``post_v1_chats_chat_id_invite``: letters, digits and underscores only."""
    words = path.replace("{", "").replace("}", "").replace(".", "_").strip("/").split("/")
    return "_".join([method.lower(), *words]).replace("-", "_")


def _path_parameter(name: str) -> dict[str, Any]:
    schema: Schema = (
        {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
        if name in _PATH_INTEGERS
        else {"type": "string", "maxLength": 64}
    )
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameters(op: Operation, in_path: list[str]) -> list[dict[str, Any]]:
    assert op.request is not None
    return [
        {
            "name": f.name,
            "in": "query",
            "required": f.name in op.required,
            "description": field_comment(op.request, f.name),
            "schema": scalar(f, request=False),
        }
        for f in op.request.fields
        if f.name not in in_path and not f.is_repeated and f.message_type is None
    ]


def _responses(op: Operation, schemas: SchemaSet) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success."}
    if isinstance(op.response, Descriptor):
        success["content"] = {"application/json": {"schema": schemas.response(op.response)}}
    elif op.response in _MEDIA:
        success["content"] = {op.response: {"schema": {}}}
    elif op.response is not None:
        schema = {"$ref": f"#/components/schemas/{op.response}"}
        success["content"] = {"application/json": {"schema": schema}}
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.extra_statuses:
        responses[str(status)] = success
    reasons: dict[int, list[str]] = {}
    for reason in op.errors:
        reasons.setdefault(_REASON_STATUS[reason.split(" ")[0]], []).append(reason)
    statuses = dict.fromkeys([400, 413, 503] if op.auth or op.request else [503])
    if op.auth:
        statuses[401] = None
    for status in sorted({*statuses, *reasons}):
        if str(status) in responses:
            continue
        text = ", ".join(reasons[status]) if status in reasons else _ERROR_STATUSES[status]
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return responses


async def serve_document(request: web.Request) -> web.Response:
    """The document, built on the first call (the router is complete by then)."""
    pages = request.app[_PAGES]
    if OPENAPI_PATH not in pages:
        document = json.dumps(build_document(request.app), indent=1).encode()
        pages[OPENAPI_PATH] = ("application/json", document)
    content_type, data = pages[OPENAPI_PATH]
    return web.Response(body=data, content_type=content_type)


async def serve_docs(request: web.Request) -> web.Response:
    """The page's files: ``/docs`` is index.html, ``/docs/{name}`` its script and style."""
    name = request.match_info.get("name", "index.html")
    page = request.app[_PAGES].get(name) if name in _STATIC_FILES else None
    if page is None:
        raise web.HTTPNotFound()
    return web.Response(body=page[1], content_type=page[0])


_STATIC_FILES = {"index.html": "text/html", "docs.js": "text/javascript", "docs.css": "text/css"}


def add_routes(app: web.Application) -> None:
    """Serve the document and the page (the page's files are read here, once)."""
    folder = importlib.resources.files("gateway") / "static"
    app[_PAGES] = {
        name: (content_type, (folder / name).read_bytes())
        for name, content_type in _STATIC_FILES.items()
    }
    app.router.add_get(OPENAPI_PATH, serve_document)
    app.router.add_get(DOCS_PATH, serve_docs)
    app.router.add_get(DOCS_PATH + "/{name}", serve_docs)
