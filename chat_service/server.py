"""The chat role's composition root: wires stores, auth client, caches, the read batcher
and the outbox relay into the servicer; the relay and batcher stop with the role."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

from grpc import aio
from minitg.auth.v1 import auth_internal_service_pb2_grpc, auth_service_pb2_grpc
from minitg.chat.v1 import chat_internal_service_pb2_grpc, chat_service_pb2_grpc

from chat_service.adapters import queries
from chat_service.adapters.member_cache import MemberCache
from chat_service.adapters.outbox import OutboxRelay
from chat_service.adapters.reads import ReadStore
from chat_service.adapters.users import UserDirectory
from chat_service.api.internal import ChatInternalServicer
from chat_service.api.servicer import ChatServicer
from chat_service.usecases.chat import ChatUseCases, Limits
from chat_service.usecases.read_batcher import ReadBatcher
from svckit.auth_client import remote_authenticator
from svckit.backends import EmbeddedBackends, open_hot_state
from svckit.config import Config
from svckit.grpc_auth import CallGuard
from svckit.grpc_server import open_channel
from svckit.registry import ConnectionRegistry, registry_namespace
from svckit.revocations import open_revocations
from svckit.service_role import Backends, GrpcServiceRole, Registration, ServiceSpec

SERVICE_NAME = "minitg.chat.v1.ChatService"
INTERNAL_SERVICE_NAME = "minitg.chat.v1.ChatInternalService"


async def build_servicer(cfg: Config, backends: Backends, stack: AsyncExitStack) -> Registration:
    """Wire the chat service's domain and adapters; return its registration function."""
    db, state, bus = backends.database, backends.hot_state, backends.bus
    assert db is not None and state is not None and bus is not None
    msg = cfg.messaging
    auth_channel = open_channel(cfg.auth_target, timeout=cfg.rpc_timeout_seconds)
    stack.push_async_callback(auth_channel.close, None)
    auth_stub = auth_service_pb2_grpc.AuthServiceStub(auth_channel)
    revocations = await open_revocations(cfg, backends.embedded, stack)
    authn = remote_authenticator(
        auth_stub,
        auth_internal_service_pb2_grpc.AuthInternalServiceStub(auth_channel),
        cfg.auth,
        msg.internal_token,
        revocations,
    )

    registry_state = await open_hot_state(
        cfg.redis_url, registry_namespace(cfg.redis_prefix), embedded=backends.embedded
    )
    stack.push_async_callback(registry_state.close)
    relay = OutboxRelay(
        db,
        bus,
        ConnectionRegistry(registry_state, msg.registry_ttl_seconds),
        poll_seconds=msg.outbox_poll_seconds,
        retention_days=msg.update_retention_days,
    )
    relay.start()
    stack.push_async_callback(relay.stop)

    reads = ReadBatcher(
        ReadStore(db),
        window=msg.watermark_flush_seconds,
        clock_ms=lambda: int(time.time() * 1000),
        on_commit=relay.wake,
    )
    stack.push_async_callback(reads.close)

    async def load_members(chat_id: int) -> list[int]:
        return await queries.member_ids(db, chat_id)

    cases = ChatUseCases(
        db,
        UserDirectory(auth_stub),
        MemberCache(state, load_members, msg.member_cache_seconds),
        reads,
        relay,
        Limits(msg.max_group_members, msg.max_text_chars, msg.edit_window_seconds),
    )
    servicer, internal = ChatServicer(cases), ChatInternalServicer(cases)

    def register(server: aio.Server) -> None:
        chat_service_pb2_grpc.add_ChatServiceServicer_to_server(servicer, server)
        chat_internal_service_pb2_grpc.add_ChatInternalServiceServicer_to_server(internal, server)

    return Registration(register, CallGuard(authn, msg.internal_token))


SPEC = ServiceSpec(
    role="chat",
    service_name=SERVICE_NAME,
    internal_services=(INTERNAL_SERVICE_NAME,),
    uses=frozenset({"database", "hot_state", "bus"}),
    migrations_package="chat_service",
    build_servicer=build_servicer,
    advisory_checks=frozenset({"broker"}),  # sends commit; the outbox publishes later
)


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GrpcServiceRole:
    return GrpcServiceRole(SPEC, cfg, cfg.chat_listen, embedded)
