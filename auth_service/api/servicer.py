"""The AuthService servicer: translates proto <-> use cases and authenticates callers.

Who may call what is declared per RPC in the proto and enforced by the server interceptor
(svckit.grpc_auth): Register, Login, Refresh and GetJwks are public; every other AuthService
RPC runs with the caller bound (``current_principal``); CheckSession is for minitg services
only (AuthInternalService). Register, Login, Refresh and LookupUser are rate limited here
(``throttle``), whoever the caller is.
"""

from __future__ import annotations

from typing import Any

from grpc import aio
from minitg.auth.v1 import (
    auth_internal_service_pb2,
    auth_internal_service_pb2_grpc,
    auth_pb2,
    auth_service_pb2,
    auth_service_pb2_grpc,
)

from auth_service.adapters.store import SessionRecord, UserRecord
from auth_service.api.throttle import AuthThrottle
from auth_service.usecases.auth import AuthUseCases, SignedIn, Tokens
from svckit.authn import Authenticator, current_principal
from svckit.errors import InvalidField
from svckit.paging import clamp_page_size, decode_page_token, encode_page_token

MAX_BATCH_USERS = 100


def _user(user: UserRecord, *, private: bool) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.id,
        display_name=user.display_name,
        email=user.email if private else "",
        created_at_ms=user.created_at_ms,
    )


def _tokens(tokens: Tokens) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type="Bearer",
        expires_in_seconds=tokens.access_ttl,
        refresh_expires_in_seconds=tokens.refresh_ttl,
    )


def _session(session: SessionRecord, current: str) -> auth_pb2.Session:
    return auth_pb2.Session(
        id=session.id,
        device_name=session.device_name,
        created_at_ms=session.created_at_ms,
        last_used_at_ms=session.last_used_at_ms,
        current=session.id == current,
    )


def _signed_in(result: SignedIn) -> dict[str, Any]:
    return {
        "user": _user(result.user, private=True),
        "session_id": result.session_id,
        "tokens": _tokens(result.tokens),
    }


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """minitg.auth.v1.AuthService."""

    def __init__(self, cases: AuthUseCases, authn: Authenticator, throttle: AuthThrottle) -> None:
        self._cases, self._authn, self._throttle = cases, authn, throttle

    async def Register(
        self,
        request: auth_service_pb2.RegisterRequest,
        context: aio.ServicerContext[
            auth_service_pb2.RegisterRequest, auth_service_pb2.RegisterResponse
        ],
    ) -> auth_service_pb2.RegisterResponse:
        await self._throttle.register(self._throttle.client_ip(context))
        result = await self._cases.register(
            request.email, request.password, request.display_name, request.device_name
        )
        return auth_service_pb2.RegisterResponse(**_signed_in(result))

    async def Login(
        self,
        request: auth_service_pb2.LoginRequest,
        context: aio.ServicerContext[auth_service_pb2.LoginRequest, auth_service_pb2.LoginResponse],
    ) -> auth_service_pb2.LoginResponse:
        await self._throttle.login(self._throttle.client_ip(context), request.email)
        result = await self._cases.login(request.email, request.password, request.device_name)
        return auth_service_pb2.LoginResponse(**_signed_in(result))

    async def Refresh(
        self,
        request: auth_service_pb2.RefreshRequest,
        context: aio.ServicerContext[
            auth_service_pb2.RefreshRequest, auth_service_pb2.RefreshResponse
        ],
    ) -> auth_service_pb2.RefreshResponse:
        if not request.refresh_token:
            raise InvalidField("refresh_token", "refresh_token is required")
        await self._throttle.refresh(self._throttle.client_ip(context))
        session_id, tokens = await self._cases.refresh(request.refresh_token)
        return auth_service_pb2.RefreshResponse(tokens=_tokens(tokens), session_id=session_id)

    async def Logout(
        self,
        request: auth_service_pb2.LogoutRequest,
        context: aio.ServicerContext[
            auth_service_pb2.LogoutRequest, auth_service_pb2.LogoutResponse
        ],
    ) -> auth_service_pb2.LogoutResponse:
        caller = current_principal()
        await self._cases.revoke(caller.user_id, caller.session_id, "logout")
        self._authn.forget_session(caller.session_id)
        return auth_service_pb2.LogoutResponse()

    async def ListSessions(
        self,
        request: auth_service_pb2.ListSessionsRequest,
        context: aio.ServicerContext[
            auth_service_pb2.ListSessionsRequest, auth_service_pb2.ListSessionsResponse
        ],
    ) -> auth_service_pb2.ListSessionsResponse:
        caller = current_principal()
        size = clamp_page_size(request.page_size, default=50, maximum=100)
        after = str(decode_page_token(request.page_token).get("after", ""))
        rows = await self._cases.sessions(caller.user_id, after, size + 1)
        token = encode_page_token({"after": rows[size - 1].id}) if len(rows) > size else ""
        return auth_service_pb2.ListSessionsResponse(
            sessions=[_session(s, caller.session_id) for s in rows[:size]],
            next_page_token=token,
        )

    async def RevokeSession(
        self,
        request: auth_service_pb2.RevokeSessionRequest,
        context: aio.ServicerContext[
            auth_service_pb2.RevokeSessionRequest, auth_service_pb2.RevokeSessionResponse
        ],
    ) -> auth_service_pb2.RevokeSessionResponse:
        caller = current_principal()
        await self._cases.revoke(caller.user_id, request.session_id, "revoked_by_user")
        self._authn.forget_session(request.session_id)
        return auth_service_pb2.RevokeSessionResponse()

    async def GetUser(
        self,
        request: auth_service_pb2.GetUserRequest,
        context: aio.ServicerContext[
            auth_service_pb2.GetUserRequest, auth_service_pb2.GetUserResponse
        ],
    ) -> auth_service_pb2.GetUserResponse:
        caller = current_principal()
        user = await self._cases.user(request.user_id or caller.user_id)  # 0: the caller
        return auth_service_pb2.GetUserResponse(user=_user(user, private=user.id == caller.user_id))

    async def BatchGetUsers(
        self,
        request: auth_service_pb2.BatchGetUsersRequest,
        context: aio.ServicerContext[
            auth_service_pb2.BatchGetUsersRequest, auth_service_pb2.BatchGetUsersResponse
        ],
    ) -> auth_service_pb2.BatchGetUsersResponse:
        caller = current_principal()
        ids = list(dict.fromkeys(request.user_ids))
        if len(ids) > MAX_BATCH_USERS:
            raise InvalidField("user_ids", f"at most {MAX_BATCH_USERS} user ids per call")
        users = await self._cases.users(ids)
        return auth_service_pb2.BatchGetUsersResponse(
            users=[_user(u, private=u.id == caller.user_id) for u in users]
        )

    async def LookupUser(
        self,
        request: auth_service_pb2.LookupUserRequest,
        context: aio.ServicerContext[
            auth_service_pb2.LookupUserRequest, auth_service_pb2.LookupUserResponse
        ],
    ) -> auth_service_pb2.LookupUserResponse:
        caller = current_principal()
        await self._throttle.lookup(caller.user_id)
        user = await self._cases.lookup(request.email)
        return auth_service_pb2.LookupUserResponse(
            user=_user(user, private=user.id == caller.user_id)
        )

    async def GetJwks(
        self,
        request: auth_service_pb2.GetJwksRequest,
        context: aio.ServicerContext[
            auth_service_pb2.GetJwksRequest, auth_service_pb2.GetJwksResponse
        ],
    ) -> auth_service_pb2.GetJwksResponse:
        keys = [auth_pb2.JsonWebKey(**jwk) for jwk in self._cases.jwks()]
        return auth_service_pb2.GetJwksResponse(keys=keys)


class AuthInternalServicer(auth_internal_service_pb2_grpc.AuthInternalServiceServicer):
    """minitg.auth.v1.AuthInternalService (internal service credential only)."""

    def __init__(self, cases: AuthUseCases) -> None:
        self._cases = cases

    async def CheckSession(
        self,
        request: auth_internal_service_pb2.CheckSessionRequest,
        context: aio.ServicerContext[
            auth_internal_service_pb2.CheckSessionRequest,
            auth_internal_service_pb2.CheckSessionResponse,
        ],
    ) -> auth_internal_service_pb2.CheckSessionResponse:
        revoked_at = await self._cases.session_revoked_at(request.session_id)
        return auth_internal_service_pb2.CheckSessionResponse(
            revoked=revoked_at is not None,
            revoked_at_ms=revoked_at or 0,
            cache_ttl_ms=5000,
        )
