"""Hostile REST input at the edge: out-of-range integers, deep JSON, lone surrogates.

Each answer is a 400/422 in the documented error shape, never a 500; both shapes.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from tests.api.auth_client import Reply, Rest
from tests.api.conftest import RestFactory

HUGE = "99999999999999999999"  # > 2^64
DEEP = b'{"email": ' + b"[" * 5000 + b"]" * 5000 + b"}"


def _error(reply: Reply) -> tuple[int, str, str]:
    assert isinstance(reply.body, dict), reply.body
    error = reply.body["error"]
    assert {"code", "message"} <= set(error)
    return reply.status, error["code"], error.get("metadata", {}).get("field", "")


async def _call(rest: Rest, token: str, method: str, path: str, body: Any = None) -> Reply:
    if isinstance(body, bytes):
        return await rest.call(method, path, data=body, token=token)
    return await rest.call(method, path, json=body, token=token)


# (method, path, body, expected (status, code, field))
_INTEGER_CASES = [
    ("GET", f"/v1/chats?page_size={HUGE}", None, (422, "INVALID_FIELD", "page_size")),
    ("GET", f"/v1/chats?page_size={2**31}", None, (422, "INVALID_FIELD", "page_size")),
    ("GET", f"/v1/users/{HUGE}", None, (422, "INVALID_FIELD", "user_id")),
    ("GET", f"/v1/auth/sessions?page_size={HUGE}", None, (422, "INVALID_FIELD", "page_size")),
    ("GET", f"/v1/users/{2**63}", None, (422, "INVALID_FIELD", "user_id")),
    ("GET", f"/v1/chats/{HUGE}", None, (422, "INVALID_FIELD", "chat_id")),
    ("GET", f"/v1/chats/-{HUGE}", None, (422, "INVALID_FIELD", "chat_id")),
    ("POST", f"/v1/chats/{HUGE}/leave", None, (422, "INVALID_FIELD", "chat_id")),
    ("GET", f"/v1/chats/1/messages?before_seq={HUGE}", None, (422, "INVALID_FIELD", "before_seq")),
    ("GET", f"/v1/chats/1/messages?page_size={HUGE}", None, (422, "INVALID_FIELD", "page_size")),
    ("GET", "/v1/chats/1e22", None, (422, "INVALID_FIELD", "chat_id")),
    (
        "POST",
        "/v1/chats",
        {"kind": "CHAT_KIND_DIRECT", "peer_user_id": 10**22},
        (422, "INVALID_FIELD", "peer_user_id"),
    ),
    (
        "POST",
        "/v1/chats",
        {"kind": "CHAT_KIND_DIRECT", "peer_user_id": 1e22},
        (422, "INVALID_FIELD", "peer_user_id"),
    ),
    (
        "POST",
        "/v1/chats",
        {"kind": "CHAT_KIND_DIRECT", "peer_user_id": 0.0},
        (422, "INVALID_FIELD", "peer_user_id"),
    ),
    (
        "POST",
        "/v1/chats",
        {"kind": "CHAT_KIND_GROUP", "title": "g", "member_user_ids": [2**64]},
        (422, "INVALID_FIELD", "member_user_ids"),
    ),
    (
        "POST",
        "/v1/chats",
        {"kind": "CHAT_KIND_GROUP", "title": "g", "member_user_ids": [1e22]},
        (422, "INVALID_FIELD", "member_user_ids"),
    ),
    (
        "POST",
        "/v1/chats/1/invite",
        {"user_ids": [-(2**63) - 1]},
        (422, "INVALID_FIELD", "user_ids"),
    ),
]

_MALFORMED_CASES = [
    ("POST", "/v1/chats", DEEP, (400, "MALFORMED_REQUEST", "")),
    (
        "POST",
        "/v1/chats",
        b'{"kind": ' + b"[" * 40 + b"]" * 40 + b"}",
        (400, "MALFORMED_REQUEST", ""),
    ),
    ("POST", "/v1/auth/login", DEEP, (400, "MALFORMED_REQUEST", "")),
    (
        "POST",
        "/v1/chats",
        b'{"kind": "CHAT_KIND_GROUP", "title": "\\ud800"}',
        (400, "MALFORMED_REQUEST", ""),
    ),
    (
        "POST",
        "/v1/chats",
        b'{"kind": "CHAT_KIND_GROUP", "title": NaN}',
        (400, "MALFORMED_REQUEST", ""),
    ),
    (
        "POST",
        "/v1/chats",
        b'{"kind": "CHAT_KIND_GROUP", "\\udfff": 1}',
        (400, "MALFORMED_REQUEST", ""),
    ),
]


async def test_out_of_range_integers_are_422_naming_the_field(rest_system: RestFactory) -> None:
    """Integers beyond int64 (int32 for page_size) or floats for ids are 422 INVALID_FIELD."""
    async with rest_system() as (_, rest):
        token = (await rest.register("ints")).body["access_token"]
        for method, path, body, expected in _INTEGER_CASES:
            assert expected == _error(await _call(rest, token, method, path, body)), path


async def test_malformed_json_and_text_are_400(rest_system: RestFactory) -> None:
    """Deep nesting, lone surrogates and NaN are 400 MALFORMED_REQUEST, never a 500."""
    async with rest_system() as (_, rest):
        token = (await rest.register("deep")).body["access_token"]
        for method, path, body, expected in _MALFORMED_CASES:
            assert expected == _error(await _call(rest, token, method, path, body)), path
        surrogate = b'{"email": "\\ud800@x.org", "password": "correct horse", "display_name": "s"}'
        reply = await rest.call("POST", "/v1/auth/register", data=surrogate)
        assert (400, "MALFORMED_REQUEST", "") == _error(reply)


@pytest.mark.parametrize("user_id", ["0", "-1"])
async def test_non_positive_user_id_is_422(rest_system: RestFactory, user_id: str) -> None:
    """A user id of 0 or below in the path is 422 INVALID_FIELD user_id."""
    async with rest_system() as (_, rest):
        token = (await rest.register("zero")).body["access_token"]
        reply = await rest.call("GET", f"/v1/users/{user_id}", token=token)
        assert (422, "INVALID_FIELD", "user_id") == _error(reply)


def _out_of_range_claims(now: int) -> dict[str, dict[str, Any]]:
    """name -> claim changes that a token signed by the server's own key must not get past."""
    return {
        "exp 2^63": {"exp": 2**63},
        "exp 2^64": {"exp": 2**64},
        "exp float 1e30": {"exp": 1e30},
        "exp two days ahead": {"exp": now + 2 * 86_400},
        "exp not after iat": {"iat": now, "exp": now},
        "iat negative": {"iat": -(2**63) - 1},
        "iat bool": {"iat": True},
        "nbf in a day": {"nbf": now + 86_000},
        "sub 2^63": {"sub": str(2**63)},
        "sub 0": {"sub": "0"},
        "sub negative": {"sub": "-5"},
        "sub int": {"sub": 5},
        "sub with spaces": {"sub": " 5"},
        "sid object": {"sid": {"a": 1}},
        "jti huge": {"jti": "j" * 1_000},
    }


async def test_out_of_range_claims_are_token_invalid(rest_system: RestFactory) -> None:
    """A server-signed token with out-of-range claims is 401 TOKEN_INVALID over REST and
    at the WebSocket upgrade (never a 101 followed by a crash); the real token still works."""
    import time

    import aiohttp

    from tests.api.token_forgery import resign

    async with rest_system() as (system, rest):
        token = (await rest.register("claims")).body["access_token"]
        ws_url = system.http_url.replace("http://", "ws://") + "/v1/ws"
        for name, changes in _out_of_range_claims(int(time.time())).items():
            forged = resign(system, token, **changes)
            reply = await rest.call("GET", "/v1/users/me", token=forged)
            assert (401, "TOKEN_INVALID", "") == _error(reply), name
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await rest.session.ws_connect(ws_url, headers={"Authorization": f"Bearer {forged}"})
            assert 401 == refused.value.status, name
        assert 200 == (await rest.call("GET", "/v1/users/me", token=token)).status


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Server": "minitg",
}


async def test_answers_carry_security_headers_and_no_store(rest_system: RestFactory) -> None:
    """Token answers (register, login, refresh) and every other API answer, errors
    included, are no-store, nosniff, unframeable, and name no server version."""
    async with rest_system() as (_, rest):
        reg = await rest.register("hdr")
        login = await rest.login(reg.body["user"]["email"], "correct horse battery")
        refresh = await rest.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": login.body["refresh_token"]}
        )
        token = login.body["access_token"]
        replies = {
            "register": reg,
            "login": login,
            "refresh": refresh,
            "me": await rest.call("GET", "/v1/users/me", token=token),
            "chats": await rest.call("GET", "/v1/chats", token=token),
            "401": await rest.call("GET", "/v1/users/me"),
            "404": await rest.call("GET", "/v1/nothing"),
            "health": await rest.call("GET", "/v1/health"),
        }
        assert (201, 200, 200) == (reg.status, login.status, refresh.status)
        for name, reply in replies.items():
            got = {k: reply.headers.get(k) for k in [*_SECURITY_HEADERS, "Cache-Control"]}
            assert _SECURITY_HEADERS | {"Cache-Control": "no-store"} == got, name


async def test_websocket_upgrade_names_no_server_version(rest_system: RestFactory) -> None:
    """The 101 of a WebSocket upgrade says Server: minitg and nothing else of ours (its
    headers live as long as the socket); a refused upgrade carries every security header."""
    async with rest_system() as (system, rest):
        reg = await rest.register("ws101")
        url = system.http_url.replace("http", "ws") + "/v1/ws"
        async with aiohttp.ClientSession() as session:
            auth = {"Authorization": f"Bearer {reg.body['access_token']}"}
            async with session.ws_connect(url, headers=auth) as ws:
                assert "minitg" == ws._response.headers.get("Server")
                assert ws._response.headers.get("X-Content-Type-Options") is None
        refused = await rest.call("GET", "/v1/ws")
        assert 401 == refused.status
        got = {k: refused.headers.get(k) for k in _SECURITY_HEADERS}
        assert _SECURITY_HEADERS == got


@pytest.mark.parametrize(
    "email",
    [
        "a\x00b@example.org",
        "a\u202eb@example.org",
        "ad\u200bmin@example.org",
        "a\u2066b@example.org",
        "a\u2028b@example.org",
        "\ufeffann@example.org",
    ],
    ids=repr,
)
async def test_invisible_characters_in_email_are_422(rest_system: RestFactory, email: str) -> None:
    """Control, zero-width, bidi and separator characters in an email are 422 INVALID_FIELD."""
    async with rest_system() as (_, rest):
        reply = await rest.register("inv", email=email)
        assert (422, "INVALID_FIELD", "email") == _error(reply)


async def test_email_case_and_normal_form_make_one_account(rest_system: RestFactory) -> None:
    """Non-ASCII case (Ärger/ärger) and NFD/NFC spellings are one account on both engines:
    a second registration is 409, and login and lookup find the first by any spelling."""
    async with rest_system() as (_, rest):
        first = await rest.register("umlaut", email="Ärger@example.org")
        assert 201 == first.status
        for other in ("ärger@example.org", "A\u0308rger@example.org", "ÄRGER@EXAMPLE.ORG"):
            assert (409, "EMAIL_TAKEN", "") == _error(await rest.register("u2", email=other))
            login = await rest.login(other, "correct horse battery")
            assert (200, first.body["user"]["id"]) == (login.status, login.body["user"]["id"])
        token = first.body["access_token"]
        found = await rest.call("GET", "/v1/users?email=a%CC%88rger@example.org", token=token)
        assert (200, first.body["user"]["id"]) == (found.status, found.body["user"]["id"])


async def test_metrics_are_not_served_on_the_public_port(rest_system: RestFactory) -> None:
    """``GET /metrics`` on the gateway's HTTP port is 404: metrics live on their own address."""
    async with rest_system() as (_, rest):
        assert (404, "NOT_FOUND", "") == _error(await rest.call("GET", "/metrics"))


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /v1/users/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /v1/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/chats HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["header over 8 KiB", "byte 0xff in the path", "broken chunk"],
)
async def test_unparseable_requests_are_400_without_error_logs(
    rest_system: RestFactory, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A request aiohttp cannot parse is answered 400 and logged as a one-line WARNING,
    never as an ERROR with a traceback (anyone on the internet can send one)."""
    import asyncio

    async with rest_system() as (system, _):
        host, port = system.http_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
