"""The auth role's composition root."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

from grpc import aio
from minitg.auth.v1 import auth_internal_service_pb2_grpc, auth_service_pb2_grpc

from auth_service.adapters.keys import load_signing_keys
from auth_service.adapters.passwords import PasswordHasher
from auth_service.adapters.store import AccountStore
from auth_service.api.servicer import AuthInternalServicer, AuthServicer
from auth_service.api.throttle import AuthThrottle
from auth_service.usecases.auth import AuthUseCases
from auth_service.usecases.revocation_keeper import RevocationKeeper
from svckit.authn import Authenticator
from svckit.backends import EmbeddedBackends, open_bus, open_hot_state
from svckit.config import Config
from svckit.grpc_auth import CallGuard
from svckit.ratelimit import RateLimiter
from svckit.registry import ConnectionRegistry, registry_namespace
from svckit.revocations import open_revocations
from svckit.service_role import Backends, GrpcServiceRole, Registration, ServiceSpec
from svckit.session_end import SessionEndAnnouncer

SERVICE_NAME = "minitg.auth.v1.AuthService"
INTERNAL_SERVICE_NAME = "minitg.auth.v1.AuthInternalService"


async def build_servicer(cfg: Config, backends: Backends, stack: AsyncExitStack) -> Registration:
    """Wire keys, password hashing, storage and token verification into the servicer."""
    assert backends.database is not None
    keys = await asyncio.to_thread(
        load_signing_keys, cfg.auth.keys_dir, generate_if_empty=cfg.auth.generate_keys
    )
    hasher = PasswordHasher(cfg.auth.bcrypt_cost)
    stack.callback(hasher.close)
    revocations = await open_revocations(cfg, backends.embedded, stack)
    announcer = await _open_announcer(cfg, backends, stack)

    async def session_ended(user_id: int, session_id: str) -> None:
        # The list first: a client told to go away must not get back in on reconnect.
        await keeper.add(session_id)
        await announcer.announce(user_id, session_id)

    cases = AuthUseCases(
        AccountStore(backends.database), hasher, keys, cfg.auth, on_revoke=session_ended
    )
    keeper = RevocationKeeper(revocations, cases.revoked_since, cases.now_ms)
    _in_background(stack, keeper.run())

    async def local_jwks() -> Sequence[Mapping[str, str]]:
        return cases.jwks()

    async def locally_revoked(session_id: str, _token: str) -> bool:
        return await cases.session_revoked_at(session_id) is not None

    authn = Authenticator(
        jwks=local_jwks,
        revoked=locally_revoked,
        issuer=cfg.auth.issuer,
        audience=cfg.auth.audience,
        session_ttl=0,  # the auth service reads its own table: always current
        min_jwks_refresh=0,
    )
    assert backends.hot_state is not None
    limiter = RateLimiter(backends.hot_state, cfg.rates)  # shared by every auth pod
    stack.push_async_callback(limiter.close)
    throttle = AuthThrottle(limiter, cfg.messaging.internal_token)
    servicer = AuthServicer(cases, authn, throttle)
    internal = AuthInternalServicer(cases)

    def register(server: aio.Server) -> None:
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
        auth_internal_service_pb2_grpc.add_AuthInternalServiceServicer_to_server(internal, server)

    return Registration(register, CallGuard(authn, cfg.messaging.internal_token))


def _in_background(stack: AsyncExitStack, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` for the role's lifetime; cancelled when ``stack`` closes."""
    task = asyncio.ensure_future(coro)

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(cancel)


async def _open_announcer(
    cfg: Config, backends: Backends, stack: AsyncExitStack
) -> SessionEndAnnouncer:
    """The bus and connection registry that close an ended session's sockets on every pod.

    Opened here rather than through ``ServiceSpec.uses``: the broker is not needed to sign
    in, so it must not count in the auth service's health.
    """
    bus = await open_bus(
        cfg.broker_url, queue_type=cfg.broker_queue_type, embedded=backends.embedded
    )
    stack.push_async_callback(bus.close)
    registry_state = await open_hot_state(
        cfg.redis_url, registry_namespace(cfg.redis_prefix), embedded=backends.embedded
    )
    stack.push_async_callback(registry_state.close)
    registry = ConnectionRegistry(registry_state, cfg.messaging.registry_ttl_seconds)
    return SessionEndAnnouncer(bus, registry)


SPEC = ServiceSpec(
    role="auth",
    service_name=SERVICE_NAME,
    internal_services=(INTERNAL_SERVICE_NAME,),
    uses=frozenset({"database", "hot_state"}),
    migrations_package="auth_service",
    build_servicer=build_servicer,
)


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GrpcServiceRole:
    return GrpcServiceRole(SPEC, cfg, cfg.auth_listen, embedded)
