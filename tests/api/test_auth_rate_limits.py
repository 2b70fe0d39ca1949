"""Sign-in and lookup rate limits live in the auth service: REST, WebSocket and direct gRPC
callers draw from the same buckets, and only the gateway may name a client IP."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from svckit.authn import service_metadata
from svckit.errors import ErrorDetails, details_from_rpc_error
from svckit.ratelimit import CLIENT_IP_HEADER
from tests.api.conftest import RestFactory
from tests.harness import System

AS = auth_service_pb2


def _stub(system: System) -> auth_service_pb2_grpc.AuthServiceAsyncStub:
    return auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))


async def _failure(call: Any) -> ErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return details_from_rpc_error(info.value)


async def _grpc_login(system: System, email: str, metadata: Any = None) -> ErrorDetails:
    request = AS.LoginRequest(email=email, password="wrong password")
    return await _failure(_stub(system).Login(request, metadata=metadata))


async def test_wrong_passwords_over_grpc_are_throttled(rest_system: RestFactory) -> None:
    """Past MINITG_RATE_LOGIN, a direct gRPC Login is RESOURCE_EXHAUSTED RATE_LIMITED."""
    async with rest_system(MINITG_RATE_LOGIN="5/60") as (system, _):
        outcomes = [await _grpc_login(system, "victim@example.org") for _ in range(8)]
        assert ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"] * 3 == [o.reason for o in outcomes]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED == outcomes[-1].code
        assert 1 <= int(outcomes[-1].metadata["retry_after_ms"]) <= 60_000


async def test_rest_and_grpc_share_the_login_bucket(rest_system: RestFactory) -> None:
    """3 REST and 3 gRPC failures for one email hit a limit of 5 (gRPC refused, then REST
    answers 429 with Retry-After): the gateway passes the client IP on."""
    async with rest_system(MINITG_RATE_LOGIN="5/60") as (system, rest):
        email = "shared@example.org"
        rest_codes = [(await rest.login(email, "wrong password")).status for _ in range(3)]
        grpc_reasons = [(await _grpc_login(system, email)).reason for _ in range(3)]
        assert [401, 401, 401] == rest_codes
        assert ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"] == grpc_reasons
        limited = await rest.login(email, "wrong password")
        assert (429, "RATE_LIMITED") == (limited.status, limited.code)
        assert 1 <= int(limited.headers["Retry-After"]) <= 60


async def test_user_lookup_over_grpc_is_throttled(rest_system: RestFactory) -> None:
    """LookupUser straight over gRPC shares MINITG_RATE_USER_LOOKUP with REST, per caller."""
    async with rest_system(MINITG_RATE_USER_LOOKUP="3/60") as (system, rest):
        caller = await system.register("looker")
        token = caller.access_token
        rest_codes = [
            (await rest.call("GET", "/v1/users?email=no@example.org", token=token)).status
            for _ in range(2)
        ]
        lookup = AS.LookupUserRequest(email="no@example.org")
        reasons = [
            (await _failure(_stub(system).LookupUser(lookup, metadata=caller.metadata()))).reason
            for _ in range(2)
        ]
        assert [404, 404] == rest_codes
        assert ["USER_NOT_FOUND", "RATE_LIMITED"] == reasons


async def test_only_the_internal_caller_may_name_a_client_ip(rest_system: RestFactory) -> None:
    """A direct caller asserting a client IP is UNAUTHENTICATED (no fresh IP per guess); the
    gateway's credential makes it count against that IP's own buckets."""
    async with rest_system(MINITG_RATE_LOGIN="1/60") as (system, _):
        spoofed = ((CLIENT_IP_HEADER, "203.0.113.7"),)
        refused = await _grpc_login(system, "ip@example.org", spoofed)
        assert (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID") == (
            refused.code,
            refused.reason,
        )
        internal = service_metadata(system.cfg.messaging.internal_token)
        reasons = [
            (
                await _grpc_login(system, "ip@example.org", (*internal, (CLIENT_IP_HEADER, ip)))
            ).reason
            for ip in ("203.0.113.7", "203.0.113.8", "203.0.113.7")
        ]
        assert ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"] == reasons


async def test_forwarded_clients_have_their_own_buckets(rest_system: RestFactory) -> None:
    """Behind a trusted proxy, two clients' logins for one email are limited separately."""
    async with rest_system(MINITG_RATE_LOGIN="1/60", MINITG_TRUST_FORWARDED_FOR="true") as (
        _,
        rest,
    ):
        body = {"email": "fwd@example.org", "password": "wrong password"}
        codes = [
            (
                await rest.call(
                    "POST", "/v1/auth/login", json=body, headers={"X-Forwarded-For": ip}
                )
            ).status
            for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.1")
        ]
        assert [401, 401, 429] == codes
