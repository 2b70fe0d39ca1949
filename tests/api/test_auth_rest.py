"""The accounts, sessions and tokens REST API, end to end through gateway and auth service.

Every test runs on both shapes: embedded (SQLite, in-memory state) and distributed
(PostgreSQL, Redis, RabbitMQ).
"""

from __future__ import annotations

import time

import jwt
import pytest

from tests.api.auth_client import Reply
from tests.api.conftest import RestFactory


def _error(reply: Reply) -> tuple[int, str]:
    return reply.status, reply.code


async def test_register_returns_201_tokens_and_cookie(rest_system: RestFactory) -> None:
    """Register answers 201 with user, session, tokens and an HttpOnly refresh cookie."""
    async with rest_system(MINITG_COOKIE_SECURE="true") as (_, rest):
        reply = await rest.register("alice", email="Alice@Example.org", device_name="phone")
        assert 201 == reply.status
        body = reply.body
        assert {"id", "email", "display_name", "created_at_ms"} == set(body["user"])
        assert "Alice@Example.org" == body["user"]["email"]
        assert ("Bearer", 900) == (body["token_type"], body["expires_in"])
        assert body["access_token"] and body["refresh_token"] and body["session_id"]
        cookie = reply.headers["Set-Cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/v1/auth"):
            assert attribute in cookie
        assert cookie.startswith(f"refresh_token={body['refresh_token']};")


async def test_email_taken_case_insensitively(rest_system: RestFactory) -> None:
    """A second account for the same email in another case is 409 EMAIL_TAKEN."""
    async with rest_system() as (_, rest):
        assert 201 == (await rest.register("a", email="bob@example.org")).status
        assert (409, "EMAIL_TAKEN") == _error(await rest.register("b", email="BOB@Example.ORG"))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "é" * 37}, "password"),  # 74 bytes: over bcrypt's 72, never truncated
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": 42}, "display_name"),
        ({"device_name": "d" * 65}, "device_name"),
    ],
)
async def test_register_invalid_field_is_422(
    rest_system: RestFactory, fields: dict[str, object], field: str
) -> None:
    """Each invalid field is 422 INVALID_FIELD naming the field."""
    async with rest_system() as (_, rest):
        reply = await rest.register("v", **fields)
        assert (422, "INVALID_FIELD") == _error(reply)
        assert {"field": field} == reply.body["error"]["metadata"]


async def test_password_of_exactly_72_bytes_is_accepted(rest_system: RestFactory) -> None:
    """72 bytes of UTF-8 is the longest password; it works for login too."""
    async with rest_system() as (_, rest):
        password = "é" * 36  # 72 bytes
        reply = await rest.register("p", password=password)
        assert 201 == reply.status
        assert 200 == (await rest.login(reply.body["user"]["email"], password)).status


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe", b'{"email": {"$ne": 1}}']
)
async def test_malformed_bodies_are_4xx_never_500(rest_system: RestFactory, raw: bytes) -> None:
    """Malformed JSON or shapes get 400/422 with a JSON error, never 500."""
    async with rest_system() as (_, rest):
        reply = await rest.call("POST", "/v1/auth/register", data=raw)
        assert reply.status in (400, 422)
        assert reply.code in ("MALFORMED_REQUEST", "INVALID_FIELD")


async def test_login_and_failures_look_identical(rest_system: RestFactory) -> None:
    """Wrong password and unknown email: same 401, code and message, both run bcrypt."""
    from svckit import metrics

    async with rest_system() as (_, rest):
        reg = await rest.register("carol")
        email = reg.body["user"]["email"]
        ok = await rest.login(email.upper(), "correct horse battery", device_name="laptop")
        assert 200 == ok.status
        assert reg.body["user"]["id"] == ok.body["user"]["id"]
        assert ok.body["session_id"] != reg.body["session_id"]
        before = metrics.PASSWORD_CHECKS._value.get()
        wrong = await rest.login(email, "wrong password!")
        unknown = await rest.login("nobody@example.org", "wrong password!")
        assert 2 == metrics.PASSWORD_CHECKS._value.get() - before  # unknown email hashed too
        assert (401, "INVALID_CREDENTIALS") == _error(wrong)
        assert wrong.body == unknown.body
        assert 'Bearer realm="minitg"' == wrong.headers["WWW-Authenticate"]


async def test_refresh_rotates_and_reuse_revokes_session(rest_system: RestFactory) -> None:
    """Refresh rotates the token; presenting the old one again revokes the whole session."""
    async with rest_system(MINITG_REFRESH_GRACE_SECONDS="0") as (_, rest):
        reg = (await rest.register("dave")).body
        first = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]}
        )
        assert 200 == first.status
        assert first.body["refresh_token"] != reg["refresh_token"]
        assert reg["session_id"] == first.body["session_id"]
        assert (
            200 == (await rest.call("GET", "/v1/users/me", token=first.body["access_token"])).status
        )
        reused = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]}
        )
        assert (401, "REFRESH_TOKEN_REUSED") == _error(reused)
        successor = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": first.body["refresh_token"]}
        )
        assert (401, "SESSION_REVOKED") == _error(successor)
        me = await rest.call("GET", "/v1/users/me", token=first.body["access_token"])
        assert (401, "SESSION_REVOKED") == _error(me)


async def test_refresh_grace_window_allows_one_retry(rest_system: RestFactory) -> None:
    """Within the grace window a retry of a lost refresh gets new tokens, not a revocation."""
    async with rest_system(MINITG_REFRESH_GRACE_SECONDS="30") as (_, rest):
        reg = (await rest.register("erin")).body
        lost = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]}
        )
        retry = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]}
        )
        assert (200, 200) == (lost.status, retry.status)
        latest = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": retry.body["refresh_token"]}
        )
        assert 200 == latest.status
        # The lost response's token was never seen by the client: if it shows up, it is theft.
        unseen = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": lost.body["refresh_token"]}
        )
        assert (401, "REFRESH_TOKEN_REUSED") == _error(unseen)


async def test_refresh_from_cookie_and_bad_tokens(rest_system: RestFactory) -> None:
    """The cookie carries the refresh token; unknown or missing tokens are 401/422."""
    async with rest_system() as (_, rest):
        reg = (await rest.register("fay")).body
        by_cookie = await rest.call(
            "POST", "/v1/auth/refresh", headers={"Cookie": f"refresh_token={reg['refresh_token']}"}
        )
        assert 200 == by_cookie.status
        bogus = await rest.call("POST", "/v1/auth/refresh", json={"refresh_token": "nope"})
        assert (401, "REFRESH_TOKEN_INVALID") == _error(bogus)
        missing = await rest.call("POST", "/v1/auth/refresh")
        assert (422, "INVALID_FIELD") == _error(missing)


async def test_logout_ends_the_session(rest_system: RestFactory) -> None:
    """Logout is 204; afterwards the access and refresh tokens of that session fail."""
    async with rest_system() as (_, rest):
        reg = (await rest.register("gus")).body
        out = await rest.call("POST", "/v1/auth/logout", token=reg["access_token"])
        assert 204 == out.status
        me = await rest.call("GET", "/v1/users/me", token=reg["access_token"])
        assert (401, "SESSION_REVOKED") == _error(me)
        again = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": reg["refresh_token"]}
        )
        assert (401, "SESSION_REVOKED") == _error(again)


async def test_sessions_list_and_revoke(rest_system: RestFactory) -> None:
    """Sessions are listed with the current one marked; revoking another ends it."""
    async with rest_system() as (_, rest):
        reg = (await rest.register("hal", device_name="phone")).body
        laptop = (
            await rest.login(reg["user"]["email"], "correct horse battery", device_name="laptop")
        ).body
        listed = await rest.call("GET", "/v1/auth/sessions", token=reg["access_token"])
        assert 200 == listed.status
        by_id = {s["id"]: s for s in listed.body["sessions"]}
        assert {reg["session_id"], laptop["session_id"]} == set(by_id)
        assert by_id[reg["session_id"]]["current"] and not by_id[laptop["session_id"]]["current"]
        assert "laptop" == by_id[laptop["session_id"]]["device_name"]
        path = f"/v1/auth/sessions/{laptop['session_id']}"
        assert 204 == (await rest.call("DELETE", path, token=reg["access_token"])).status
        gone = await rest.call("GET", "/v1/users/me", token=laptop["access_token"])
        assert (401, "SESSION_REVOKED") == _error(gone)
        twice = await rest.call("DELETE", path, token=reg["access_token"])
        assert (404, "SESSION_NOT_FOUND") == _error(twice)


async def test_cannot_revoke_someone_elses_session(rest_system: RestFactory) -> None:
    """Another user's session id is 404 SESSION_NOT_FOUND and stays alive."""
    async with rest_system() as (_, rest):
        ivy, jon = (await rest.register("ivy")).body, (await rest.register("jon")).body
        path = f"/v1/auth/sessions/{jon['session_id']}"
        assert (404, "SESSION_NOT_FOUND") == _error(
            await rest.call("DELETE", path, token=ivy["access_token"])
        )
        assert 200 == (await rest.call("GET", "/v1/users/me", token=jon["access_token"])).status


async def test_profiles_and_lookup(rest_system: RestFactory) -> None:
    """Own profile has the email, others' do not; lookup is exact and case-insensitive."""
    async with rest_system() as (_, rest):
        kim = (await rest.register("kim", email="Kim@Example.org")).body
        lea = (await rest.register("lea")).body
        token = lea["access_token"]
        other = await rest.call("GET", f"/v1/users/{kim['user']['id']}", token=token)
        assert {
            "id": kim["user"]["id"],
            "display_name": "kim",
            "email": "",
            "created_at_ms": kim["user"]["created_at_ms"],
        } == other.body["user"]
        found = await rest.call("GET", "/v1/users?email=kim@example.ORG", token=token)
        assert kim["user"]["id"] == found.body["user"]["id"]
        assert (404, "USER_NOT_FOUND") == _error(
            await rest.call("GET", "/v1/users?email=no@example.org", token=token)
        )
        assert (404, "USER_NOT_FOUND") == _error(
            await rest.call("GET", "/v1/users/999999", token=token)
        )
        assert (422, "INVALID_FIELD") == _error(
            await rest.call("GET", "/v1/users/abc", token=token)
        )
        assert (422, "INVALID_FIELD") == _error(await rest.call("GET", "/v1/users", token=token))


async def test_jwks_verifies_an_issued_token(rest_system: RestFactory) -> None:
    """The published JWKS verifies an access token the service issued (ES256, kid, claims)."""
    async with rest_system() as (_, rest):
        reg = (await rest.register("max")).body
        jwks = await rest.call("GET", "/.well-known/jwks.json")
        assert 200 == jwks.status
        token = reg["access_token"]
        header = jwt.get_unverified_header(token)
        assert ("ES256", "at+jwt") == (header["alg"], header["typ"])
        key = next(k for k in jwks.body["keys"] if k["kid"] == header["kid"])
        assert {"kid", "kty", "crv", "x", "y", "alg", "use"} == set(key)
        public = jwt.PyJWK(key).key
        claims = jwt.decode(token, public, algorithms=["ES256"], audience="minitg", issuer="minitg")
        assert str(reg["user"]["id"]) == claims["sub"]
        assert reg["session_id"] == claims["sid"]
        assert {"iat", "exp", "jti"} <= set(claims)


async def test_error_routes_are_json(rest_system: RestFactory) -> None:
    """Unknown routes, wrong methods and oversized bodies answer JSON errors."""
    async with rest_system() as (_, rest):
        assert (404, "NOT_FOUND") == _error(await rest.call("GET", "/v1/nothing"))
        assert (405, "METHOD_NOT_ALLOWED") == _error(await rest.call("GET", "/v1/auth/login"))
        huge = b'{"email": "' + b"a" * 200_000 + b'"}'
        assert (413, "REQUEST_TOO_LARGE") == _error(
            await rest.call("POST", "/v1/auth/login", data=huge)
        )


async def test_login_rate_limit_has_retry_after(rest_system: RestFactory) -> None:
    """Past the per (IP, email) login limit: 429 RATE_LIMITED with Retry-After seconds."""
    async with rest_system(MINITG_RATE_LOGIN="3/60") as (_, rest):
        for _ in range(3):
            assert 401 == (await rest.login("who@example.org", "bad password")).status
        limited = await rest.login("WHO@example.org", "bad password")
        assert (429, "RATE_LIMITED") == _error(limited)
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        other = await rest.login("someone-else@example.org", "bad password")
        assert 401 == other.status  # a different email has its own bucket


async def test_per_ip_limits(rest_system: RestFactory) -> None:
    """Registration and credential stuffing are limited per client IP."""
    async with rest_system(
        MINITG_RATE_REGISTER_PER_IP="2/3600", MINITG_RATE_LOGIN_PER_IP="4/60"
    ) as (_, rest):
        assert [201, 201] == [(await rest.register(f"r{i}")).status for i in range(2)]
        assert (429, "RATE_LIMITED") == _error(await rest.register("r3"))
        codes = [(await rest.login(f"u{i}@example.org", "bad password")).status for i in range(5)]
        assert [401, 401, 401, 401, 429] == codes


async def test_lookup_rate_limit_per_user(rest_system: RestFactory) -> None:
    """User lookup by email is limited per caller."""
    async with rest_system(MINITG_RATE_USER_LOOKUP="2/60") as (_, rest):
        token = (await rest.register("nat")).body["access_token"]
        codes = [
            (await rest.call("GET", "/v1/users?email=x@example.org", token=token)).status
            for _ in range(3)
        ]
        assert [404, 404, 429] == codes


async def test_expired_token_rejected(rest_system: RestFactory) -> None:
    """An access token past its exp (plus leeway) is 401 TOKEN_EXPIRED."""
    async with rest_system(MINITG_ACCESS_TOKEN_TTL_SECONDS="1") as (system, rest):
        reg = (await rest.register("oli")).body
        forged = _forge(system, reg, exp=int(time.time()) - 120)
        assert (401, "TOKEN_EXPIRED") == _error(
            await rest.call("GET", "/v1/users/me", token=forged)
        )


def _forge(system: object, reg: dict[str, object], **changes: object) -> str:
    """Re-sign the claims of ``reg``'s token with the real key, after ``changes``."""
    from tests.api.token_forgery import resign

    return resign(system, str(reg["access_token"]), **changes)


def _hostile_tokens(system: object, token: str) -> dict[str, tuple[str, str]]:
    """name -> (token, expected reason) for every rejected-token case."""
    from tests.api import token_forgery as forge

    now = int(time.time())
    return {
        "alg none": (forge.unsigned(token), "TOKEN_INVALID"),
        "HS256 keyed with the public key": (
            forge.hs256_with_public_key(system, token),
            "TOKEN_INVALID",
        ),
        "unknown kid": (forge.foreign_key(token, "not-a-real-kid"), "TOKEN_INVALID"),
        "foreign key, known kid": (
            forge.foreign_key(token, str(jwt.get_unverified_header(token)["kid"])),
            "TOKEN_INVALID",
        ),
        "tampered payload": (forge.tampered(token), "TOKEN_INVALID"),
        "expired": (forge.resign(system, token, exp=now - 120), "TOKEN_EXPIRED"),
        "wrong audience": (forge.resign(system, token, aud="someone-else"), "TOKEN_INVALID"),
        "wrong issuer": (forge.resign(system, token, iss="evil"), "TOKEN_INVALID"),
        "wrong typ": (forge.resign(system, token, headers={"typ": "JWT"}), "TOKEN_INVALID"),
        "missing sid": (forge.resign(system, token, sid=None), "TOKEN_INVALID"),
        "not a jwt": ("garbage", "TOKEN_INVALID"),
    }


async def test_rejected_tokens_over_http(rest_system: RestFactory) -> None:
    """Every hostile token is 401 with its reason at the gateway; the real one works."""
    async with rest_system() as (system, rest):
        token = (await rest.register("pam")).body["access_token"]
        assert 200 == (await rest.call("GET", "/v1/users/me", token=token)).status
        for name, (bad, reason) in _hostile_tokens(system, token).items():
            reply = await rest.call("GET", "/v1/users/me", token=bad)
            assert (401, reason) == _error(reply), name
        assert (401, "TOKEN_MISSING") == _error(await rest.call("GET", "/v1/users/me"))
        basic = await rest.call("GET", "/v1/users/me", headers={"Authorization": "Basic eDp5"})
        assert (401, "TOKEN_INVALID") == _error(basic)


async def test_rejected_tokens_over_grpc(rest_system: RestFactory) -> None:
    """The auth service itself rejects the same tokens (it never trusts the gateway)."""
    import grpc
    from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

    from svckit.errors import details_from_rpc_error

    async with rest_system() as (system, rest):
        token = (await rest.register("quinn")).body["access_token"]
        stub = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
        for name, (bad, reason) in _hostile_tokens(system, token).items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetUser(
                    auth_service_pb2.GetUserRequest(user_id=1),
                    metadata=(("authorization", f"Bearer {bad}"),),
                )
            details = details_from_rpc_error(caught.value)
            assert (grpc.StatusCode.UNAUTHENTICATED, reason) == (details.code, details.reason), name
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetUser(auth_service_pb2.GetUserRequest(user_id=1))
        assert "TOKEN_MISSING" == details_from_rpc_error(missing.value).reason


async def test_other_services_honour_a_sign_out(rest_system: RestFactory) -> None:
    """After logout the chat service (not only auth) refuses the session's token."""
    async with rest_system() as (_, rest):
        reg = (await rest.register("rex")).body
        assert 200 == (await rest.call("GET", "/v1/chats", token=reg["access_token"])).status
        await rest.call("POST", "/v1/auth/logout", token=reg["access_token"])
        after = await rest.call("GET", "/v1/chats", token=reg["access_token"])
        assert (401, "SESSION_REVOKED") == _error(after)
