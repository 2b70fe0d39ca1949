"""Each RPC's declared auth mode, enforced by the server interceptor, on both shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio
from minitg.auth.v1 import (
    auth_internal_service_pb2,
    auth_internal_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
)
from minitg.chat.v1 import (
    chat_internal_service_pb2,
    chat_internal_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
)
from minitg.presence.v1 import (
    presence_internal_service_pb2,
    presence_internal_service_pb2_grpc,
    presence_service_pb2,
    presence_service_pb2_grpc,
)

from svckit.authn import Authenticator, service_metadata
from svckit.config import HostPort
from svckit.errors import details_from_rpc_error
from svckit.grpc_auth import CallGuard
from svckit.grpc_server import GrpcServer
from tests.grpc_probe import health_status, reflected_services
from tests.harness import SHAPES, System, running_system
from tests.harness import TestUser as User

pytestmark = pytest.mark.asyncio(loop_scope="module")

Metadata = tuple[tuple[str, str], ...]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    tmp: Path = tmp_path_factory.mktemp(f"modes-{request.param}")
    async with running_system(request.param, tmp, roles=("auth", "chat", "presence")) as running:
        yield running


async def refusal(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    """Await a call expected to fail; return its code and reason."""
    with pytest.raises(aio.AioRpcError) as info:
        await call
    details = details_from_rpc_error(info.value)
    return details.code, details.reason


def service_calls(system: System, md: Metadata | None) -> dict[str, Awaitable[Any]]:
    """One call of each internal service, with ``md`` (None: no credential)."""
    chat = chat_internal_service_pb2_grpc.ChatInternalServiceStub(system.channel("chat"))
    presence = presence_internal_service_pb2_grpc.PresenceInternalServiceStub(
        system.channel("presence")
    )
    auth = auth_internal_service_pb2_grpc.AuthInternalServiceStub(system.channel("auth"))
    return {
        "GetStates": chat.GetStates(
            chat_internal_service_pb2.GetStatesRequest(user_ids=[1]), metadata=md
        ),
        "RelayAcks": presence.RelayAcks(
            presence_internal_service_pb2.RelayAcksRequest(), metadata=md
        ),
        "CheckSession": auth.CheckSession(
            auth_internal_service_pb2.CheckSessionRequest(session_id="s"), metadata=md
        ),
    }


def user_calls(system: System, md: Metadata | None) -> dict[str, Awaitable[Any]]:
    """One user RPC of each public service, with ``md`` (None: no credential)."""
    chat = chat_service_pb2_grpc.ChatServiceStub(system.channel("chat"))
    presence = presence_service_pb2_grpc.PresenceServiceStub(system.channel("presence"))
    auth = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
    return {
        "GetState": chat.GetState(chat_service_pb2.GetStateRequest(), metadata=md),
        "GetPresence": presence.GetPresence(
            presence_service_pb2.GetPresenceRequest(user_ids=[1]), metadata=md
        ),
        "GetUser": auth.GetUser(auth_service_pb2.GetUserRequest(), metadata=md),
    }


async def test_a_user_token_on_a_service_rpc_is_permission_denied(system: System) -> None:
    """Every internal service refuses a user's valid token with PERMISSION_DENIED."""
    user = await system.register("modes")
    for name, call in service_calls(system, user.metadata()).items():
        assert (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED") == await refusal(call), name


async def test_a_service_rpc_without_the_secret_is_token_invalid(system: System) -> None:
    """No credential, or a wrong secret, on an internal RPC is UNAUTHENTICATED TOKEN_INVALID."""
    for md in (None, service_metadata("not-the-secret")):
        for name, call in service_calls(system, md).items():
            assert (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID") == await refusal(call), name


async def test_the_secret_opens_the_service_rpcs(system: System) -> None:
    """With the internal secret the internal RPCs run (and validate their input)."""
    calls = service_calls(system, service_metadata(system.cfg.messaging.internal_token))
    states = await calls.pop("GetStates")
    assert [0] == [s.pts for s in states.states]
    checked = await calls.pop("CheckSession")
    assert checked.cache_ttl_ms > 0
    # RelayAcks ran: its own validation answers (no items), not the credential check.
    assert (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD") == await refusal(calls["RelayAcks"])


async def test_a_user_rpc_without_a_token_is_token_missing(system: System) -> None:
    """A USER RPC called without credentials is UNAUTHENTICATED TOKEN_MISSING."""
    for name, call in user_calls(system, None).items():
        assert (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING") == await refusal(call), name


async def test_the_internal_secret_does_not_open_a_user_rpc(system: System) -> None:
    """The internal secret names no user: on a USER RPC it is refused (TOKEN_MISSING)."""
    secret = service_metadata(system.cfg.messaging.internal_token)
    for name, call in user_calls(system, secret).items():
        assert (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING") == await refusal(call), name


async def test_a_user_rpc_binds_the_callers_principal(system: System) -> None:
    """With a user's token a USER RPC answers for that user: GetUser with user_id 0 is the
    caller's own profile, email included, as the proto documents."""
    user = await system.register("self")
    auth = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
    reply = await auth.GetUser(auth_service_pb2.GetUserRequest(), metadata=user.metadata())
    assert (user.id, user.email) == (reply.user.id, reply.user.email)


async def test_public_rpcs_need_no_token(system: System) -> None:
    """GetJwks, Register, Login and Refresh answer a caller without any credential."""
    auth = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
    jwks = await auth.GetJwks(auth_service_pb2.GetJwksRequest())
    assert jwks.keys
    user: User = await system.register("public")  # Register without metadata
    login = await auth.Login(
        auth_service_pb2.LoginRequest(email=user.email, password=user.password)
    )
    refreshed = await auth.Refresh(
        auth_service_pb2.RefreshRequest(refresh_token=login.tokens.refresh_token)
    )
    assert login.session_id == refreshed.session_id


async def test_client_ip_header_still_needs_the_secret(system: System) -> None:
    """x-minitg-client-ip on a PUBLIC RPC is honoured only with the internal secret."""
    auth = auth_service_pb2_grpc.AuthServiceStub(system.channel("auth"))
    request = auth_service_pb2.LoginRequest(email="nobody@example.org", password="x" * 8)
    forged = (("x-minitg-client-ip", "203.0.113.9"),)
    assert (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID") == await refusal(
        auth.Login(request, metadata=forged)
    )
    vouched = forged + service_metadata(system.cfg.messaging.internal_token)
    assert (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS") == await refusal(
        auth.Login(request, metadata=vouched)
    )


async def test_internal_services_are_in_health_and_reflection(system: System) -> None:
    """Each role serves its internal service beside the public one: health and reflection
    list both."""
    for role, public in (("chat", "ChatService"), ("presence", "PresenceService")):
        target = getattr(system.cfg, f"{role}_target")
        internal = f"minitg.{role}.v1.{public.replace('Service', 'InternalService')}"
        assert "SERVING" == await health_status(target, internal)
        assert {f"minitg.{role}.v1.{public}", internal} <= await reflected_services(target)
    auth_target = system.cfg.auth_target
    assert "SERVING" == await health_status(auth_target, "minitg.auth.v1.AuthInternalService")


async def test_a_method_without_a_declared_mode_is_refused() -> None:
    """A guarded server refuses a method whose proto declares no auth mode (fail closed)."""

    async def no_keys() -> list[dict[str, str]]:
        return []

    async def never_revoked(session_id: str, token: str) -> bool:
        return False

    async def echo(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    def register(server: aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(echo, lambda b: b, lambda b: b)
        generic = grpc.method_handlers_generic_handler("test.v1.Undeclared", {"Echo": handler})
        server.add_generic_rpc_handlers((generic,))

    authn = Authenticator(
        jwks=no_keys, revoked=never_revoked, issuer="i", audience="a", session_ttl=0
    )
    server = GrpcServer(
        role="test",
        service_name="test.v1.Undeclared",
        listen=HostPort("127.0.0.1", 0),
        register=register,
        checks={},
        health_interval=1.0,
        guard=CallGuard(authn, "secret"),
    )
    port = await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.v1.Undeclared/Echo", lambda b: b, lambda b: b)
            for md in (None, service_metadata("secret")):
                assert (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED") == await refusal(
                    call(b"x", metadata=md)
                )
    finally:
        await server.stop(0)
