"""REST endpoints for accounts and sessions: ``/v1/auth/*`` and the JWKS document.

Each handler reads the request message's JSON (``http_json.parse_message``), calls
``AuthService`` over gRPC (forwarding the caller's bearer token, or for sign-in calls the
client's IP, which the auth service rate limits by) and answers the response message's JSON.
One shape differs on purpose: register, login and refresh flatten the TokenPair into the
OAuth 2.0 token-response fields (RFC 6749 section 5.1: ``access_token``, ``token_type``,
``expires_in``, ``refresh_token``) that HTTP client libraries expect, and the refresh token
also travels in an HttpOnly cookie scoped to ``/v1/auth`` for browser clients.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from minitg.auth.v1 import auth_pb2, auth_service_pb2

from gateway.deps import DEPS, GatewayDeps
from gateway.http_json import (
    message_json,
    message_response,
    page_size_param,
    parse_message,
    read_object,
)
from gateway.ratelimit import client_metadata
from svckit.authn import AUTHORIZATION

REFRESH_COOKIE = "refresh_token"
COOKIE_PATH = "/v1/auth"


def forward_token(request: web.Request) -> tuple[tuple[str, str], ...]:
    """The caller's ``Authorization`` header as gRPC metadata (the service verifies it)."""
    value = request.headers.get("Authorization", "")
    return ((AUTHORIZATION, value),) if value else ()


def _signed_in(deps: GatewayDeps, reply: Any, status: int) -> web.Response:
    tokens = reply.tokens
    response = web.json_response(
        {
            "user": message_json(reply.user),
            "session_id": reply.session_id,
            **_token_json(tokens),
        },
        status=status,
    )
    _set_refresh_cookie(deps, response, tokens)
    return response


def _token_json(tokens: auth_pb2.TokenPair) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in_seconds,
        "refresh_expires_in": tokens.refresh_expires_in_seconds,
    }


def _set_refresh_cookie(deps: GatewayDeps, response: web.Response, tokens: Any) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=tokens.refresh_expires_in_seconds,
        path=COOKIE_PATH,
        httponly=True,
        secure=deps.cfg.auth.cookie_secure,
        samesite="Strict",
    )


async def register(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    body = await read_object(request)
    reply = await deps.clients.auth.Register(
        parse_message(
            body, auth_service_pb2.RegisterRequest(), required=("email", "password", "display_name")
        ),
        metadata=client_metadata(request, deps.cfg),
    )
    return _signed_in(deps, reply, 201)


async def login(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    body = await read_object(request)
    reply = await deps.clients.auth.Login(
        parse_message(body, auth_service_pb2.LoginRequest(), required=("email", "password")),
        metadata=client_metadata(request, deps.cfg),
    )
    return _signed_in(deps, reply, 200)


async def refresh(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    body = await read_object(request, allow_empty=True)
    req = parse_message(body, auth_service_pb2.RefreshRequest())
    req.refresh_token = req.refresh_token or request.cookies.get(REFRESH_COOKIE, "")
    reply = await deps.clients.auth.Refresh(
        req,
        metadata=client_metadata(request, deps.cfg),
    )
    response = web.json_response({"session_id": reply.session_id, **_token_json(reply.tokens)})
    _set_refresh_cookie(deps, response, reply.tokens)
    return response


async def logout(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    await deps.clients.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=principal.metadata())
    deps.authn.forget_session(principal.session_id)
    await deps.on_session_revoked(principal.user_id, principal.session_id)
    response = web.Response(status=204)
    response.del_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    return response


async def list_sessions(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    reply = await deps.clients.auth.ListSessions(
        auth_service_pb2.ListSessionsRequest(
            page_size=page_size_param(request),
            page_token=request.query.get("page_token", ""),
        ),
        metadata=forward_token(request),
    )
    return message_response(reply)


async def revoke_session(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    session_id = request.match_info["session_id"]
    await deps.clients.auth.RevokeSession(
        auth_service_pb2.RevokeSessionRequest(session_id=session_id),
        metadata=principal.metadata(),
    )
    deps.authn.forget_session(session_id)
    await deps.on_session_revoked(principal.user_id, session_id)
    return web.Response(status=204)


async def jwks(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    reply = await deps.clients.auth.GetJwks(auth_service_pb2.GetJwksRequest())
    return message_response(reply, headers={"Cache-Control": "public, max-age=300"})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/auth/register", register)
    app.router.add_post("/v1/auth/login", login)
    app.router.add_post("/v1/auth/refresh", refresh)
    app.router.add_post("/v1/auth/logout", logout)
    app.router.add_get("/v1/auth/sessions", list_sessions)
    app.router.add_delete("/v1/auth/sessions/{session_id}", revoke_session)
    app.router.add_get("/.well-known/jwks.json", jwks)
