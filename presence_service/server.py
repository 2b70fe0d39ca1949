"""The presence role's composition root."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from grpc import aio
from minitg.auth.v1 import auth_internal_service_pb2_grpc, auth_service_pb2_grpc
from minitg.presence.v1 import presence_internal_service_pb2_grpc, presence_service_pb2_grpc

from presence_service.adapters.chats import GrpcChatDirectory
from presence_service.adapters.fanout import DeliveryFanout
from presence_service.adapters.hot import ConnectionStore, TypingMarks
from presence_service.adapters.store import PresenceStore
from presence_service.api.servicer import PresenceInternalServicer, PresenceServicer
from presence_service.usecases.acks import AckBatcher
from presence_service.usecases.tracker import PresenceTracker
from presence_service.usecases.typing_relay import TypingRelay
from svckit.auth_client import remote_authenticator
from svckit.backends import EmbeddedBackends, open_hot_state
from svckit.config import Config
from svckit.grpc_auth import CallGuard
from svckit.grpc_server import open_channel
from svckit.registry import ConnectionRegistry, registry_namespace
from svckit.revocations import open_revocations
from svckit.service_role import Backends, GrpcServiceRole, Registration, ServiceSpec

SERVICE_NAME = "minitg.presence.v1.PresenceService"
INTERNAL_SERVICE_NAME = "minitg.presence.v1.PresenceInternalService"


def _background(
    stack: AsyncExitStack, run: Callable[[], Coroutine[Any, Any, None]], name: str
) -> None:
    """Start ``run`` as a task the stack cancels (and awaits) on shutdown."""
    task = asyncio.create_task(run(), name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def build_servicer(cfg: Config, backends: Backends, stack: AsyncExitStack) -> Registration:
    """Wire the presence service's use cases and adapters; return its registration function."""
    assert backends.database and backends.hot_state and backends.bus
    msg = cfg.messaging
    registry_state = await open_hot_state(
        cfg.redis_url, registry_namespace(cfg.redis_prefix), embedded=backends.embedded
    )
    stack.push_async_callback(registry_state.close)
    registry = ConnectionRegistry(registry_state, msg.registry_ttl_seconds)
    auth_channel = open_channel(cfg.auth_target, timeout=cfg.rpc_timeout_seconds)
    chat_channel = open_channel(cfg.chat_target, timeout=cfg.rpc_timeout_seconds)
    for channel in (auth_channel, chat_channel):
        stack.push_async_callback(channel.close, None)
    revocations = await open_revocations(cfg, backends.embedded, stack)
    authn = remote_authenticator(
        auth_service_pb2_grpc.AuthServiceStub(auth_channel),
        auth_internal_service_pb2_grpc.AuthInternalServiceStub(auth_channel),
        cfg.auth,
        msg.internal_token,
        revocations,
    )
    chats = GrpcChatDirectory(
        chat_channel, msg.internal_token, cache_seconds=msg.member_cache_seconds
    )
    fanout = DeliveryFanout(registry, backends.bus)
    store = PresenceStore(backends.database)
    typing = TypingRelay(
        TypingMarks(backends.hot_state, msg.typing_ttl_seconds),
        chats,
        fanout,
        msg.typing_ttl_seconds,
    )
    tracker = PresenceTracker(
        ConnectionStore(backends.hot_state, keep_seconds=2 * msg.registry_ttl_seconds),
        store,
        chats,
        fanout,
        msg,
        on_offline=typing.clear_for,
    )
    acks = AckBatcher(store, chats, fanout, msg.watermark_flush_seconds)
    _background(stack, tracker.run, "presence-timers")
    _background(stack, fanout.run, "presence-fanout-retry")
    stack.push_async_callback(acks.close)  # runs after the flush loop below is stopped
    _background(stack, acks.run, "presence-ack-flush")
    servicer = PresenceServicer(tracker, typing, acks)
    internal = PresenceInternalServicer(tracker, acks)

    def register(server: aio.Server) -> None:
        presence_service_pb2_grpc.add_PresenceServiceServicer_to_server(servicer, server)
        presence_internal_service_pb2_grpc.add_PresenceInternalServiceServicer_to_server(
            internal, server
        )

    return Registration(register, CallGuard(authn, msg.internal_token))


SPEC = ServiceSpec(
    role="presence",
    service_name=SERVICE_NAME,
    internal_services=(INTERNAL_SERVICE_NAME,),
    uses=frozenset({"database", "hot_state", "bus"}),
    migrations_package="presence_service",
    build_servicer=build_servicer,
)


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GrpcServiceRole:
    return GrpcServiceRole(SPEC, cfg, cfg.presence_listen, embedded)
