"""REST endpoints for profiles: ``/v1/users/me``, ``/v1/users/{id}``, ``/v1/users?email=``.

Each answer is the GetUserResponse / LookupUserResponse JSON: ``{"user": User}``.
"""

from __future__ import annotations

from aiohttp import web
from minitg.auth.v1 import auth_service_pb2

from gateway.deps import DEPS
from gateway.http_json import int_param, message_response
from svckit.errors import InvalidField


async def me(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    reply = await deps.clients.auth.GetUser(
        auth_service_pb2.GetUserRequest(user_id=principal.user_id), metadata=principal.metadata()
    )
    return message_response(reply)


async def get_user(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    user_id = int_param(request, "user_id", minimum=1)
    reply = await deps.clients.auth.GetUser(
        auth_service_pb2.GetUserRequest(user_id=user_id), metadata=principal.metadata()
    )
    return message_response(reply)


async def find_user(request: web.Request) -> web.Response:
    """Exact-match lookup by email (the auth service rate limits it per user)."""
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    email = request.query.get("email", "").strip()
    if not email:
        raise InvalidField("email", "the email query parameter is required")
    reply = await deps.clients.auth.LookupUser(
        auth_service_pb2.LookupUserRequest(email=email), metadata=principal.metadata()
    )
    return message_response(reply)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/users/me", me)
    app.router.add_get("/v1/users/{user_id}", get_user)
    app.router.add_get("/v1/users", find_user)
