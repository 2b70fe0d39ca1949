"""The AuthService servicer: translates proto <-> use cases and authenticates callers.

Register, Login, Refresh and GetJwks are public (they are how a caller gets credentials);
every other RPC requires a valid access token whose session is live. Register, Login,
Refresh and LookupUser are rate limited here (``throttle``), whoever the caller is.
"""

from __future__ import annotations

from typing import Any

from minitg.auth.v1 import auth_pb2, auth_service_pb2, auth_service_pb2_grpc

from auth_service.adapters.store import SessionRecord, UserRecord
from auth_service.api.throttle import AuthThrottle
from auth_service.service import AuthUseCases, SignedIn, Tokens
from svckit.authn import Authenticator, Principal, bearer_from_metadata
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

    async def _caller(self, context: Any) -> Principal:
        return await self._authn.from_metadata(context.invocation_metadata())

    async def Register(self, request: Any, context: Any) -> auth_service_pb2.RegisterResponse:
        await self._throttle.register(self._throttle.client_ip(context))
        result = await self._cases.register(
            request.email, request.password, request.display_name, request.device_name
        )
        return auth_service_pb2.RegisterResponse(**_signed_in(result))

    async def Login(self, request: Any, context: Any) -> auth_service_pb2.LoginResponse:
        await self._throttle.login(self._throttle.client_ip(context), request.email)
        result = await self._cases.login(request.email, request.password, request.device_name)
        return auth_service_pb2.LoginResponse(**_signed_in(result))

    async def Refresh(self, request: Any, context: Any) -> auth_service_pb2.RefreshResponse:
        if not request.refresh_token:
            raise InvalidField("refresh_token", "refresh_token is required")
        await self._throttle.refresh(self._throttle.client_ip(context))
        session_id, tokens = await self._cases.refresh(request.refresh_token)
        return auth_service_pb2.RefreshResponse(tokens=_tokens(tokens), session_id=session_id)

    async def Logout(self, request: Any, context: Any) -> auth_service_pb2.LogoutResponse:
        caller = await self._caller(context)
        await self._cases.revoke(caller.user_id, caller.session_id, "logout")
        self._authn.forget_session(caller.session_id)
        return auth_service_pb2.LogoutResponse()

    async def ListSessions(
        self, request: Any, context: Any
    ) -> auth_service_pb2.ListSessionsResponse:
        caller = await self._caller(context)
        size = clamp_page_size(request.page_size, default=50, maximum=100)
        after = str(decode_page_token(request.page_token).get("after", ""))
        rows = await self._cases.sessions(caller.user_id, after, size + 1)
        token = encode_page_token({"after": rows[size - 1].id}) if len(rows) > size else ""
        return auth_service_pb2.ListSessionsResponse(
            sessions=[_session(s, caller.session_id) for s in rows[:size]],
            next_page_token=token,
        )

    async def RevokeSession(
        self, request: Any, context: Any
    ) -> auth_service_pb2.RevokeSessionResponse:
        caller = await self._caller(context)
        await self._cases.revoke(caller.user_id, request.session_id, "revoked_by_user")
        self._authn.forget_session(request.session_id)
        return auth_service_pb2.RevokeSessionResponse()

    async def GetUser(self, request: Any, context: Any) -> auth_service_pb2.GetUserResponse:
        caller = await self._caller(context)
        user = await self._cases.user(request.user_id)
        return auth_service_pb2.GetUserResponse(user=_user(user, private=user.id == caller.user_id))

    async def BatchGetUsers(
        self, request: Any, context: Any
    ) -> auth_service_pb2.BatchGetUsersResponse:
        caller = await self._caller(context)
        ids = list(dict.fromkeys(request.user_ids))
        if len(ids) > MAX_BATCH_USERS:
            raise InvalidField("user_ids", f"at most {MAX_BATCH_USERS} user ids per call")
        users = await self._cases.users(ids)
        return auth_service_pb2.BatchGetUsersResponse(
            users=[_user(u, private=u.id == caller.user_id) for u in users]
        )

    async def LookupUser(self, request: Any, context: Any) -> auth_service_pb2.LookupUserResponse:
        caller = await self._caller(context)
        await self._throttle.lookup(caller.user_id)
        user = await self._cases.lookup(request.email)
        return auth_service_pb2.LookupUserResponse(
            user=_user(user, private=user.id == caller.user_id)
        )

    async def GetJwks(self, request: Any, context: Any) -> auth_service_pb2.GetJwksResponse:
        keys = [auth_pb2.JsonWebKey(**jwk) for jwk in self._cases.jwks()]
        return auth_service_pb2.GetJwksResponse(keys=keys)

    async def CheckSession(
        self, request: Any, context: Any
    ) -> auth_service_pb2.CheckSessionResponse:
        await self._authn.verify_only(bearer_from_metadata(context.invocation_metadata()))
        revoked_at = await self._cases.session_revoked_at(request.session_id)
        return auth_service_pb2.CheckSessionResponse(
            revoked=revoked_at is not None,
            revoked_at_ms=revoked_at or 0,
            cache_ttl_ms=5000,
        )
