"""The chat role's composition root."""

from __future__ import annotations

from contextlib import AsyncExitStack

from grpc import aio
from minitg.chat.v1 import chat_service_pb2_grpc

from chat_service.api.servicer import ChatServicer
from svckit.backends import EmbeddedBackends
from svckit.config import Config
from svckit.service_role import Backends, GrpcServiceRole, Register, ServiceSpec

SERVICE_NAME = "minitg.chat.v1.ChatService"


async def build_servicer(cfg: Config, backends: Backends, stack: AsyncExitStack) -> Register:
    """Wire the chat service's domain and adapters; return its registration function."""
    # Not built yet: the base class answers UNIMPLEMENTED (abstract only to type checkers).
    servicer = ChatServicer()  # type: ignore[abstract]

    def register(server: aio.Server) -> None:
        chat_service_pb2_grpc.add_ChatServiceServicer_to_server(servicer, server)

    return register


SPEC = ServiceSpec(
    role="chat",
    service_name=SERVICE_NAME,
    uses=frozenset({"database", "hot_state", "bus"}),
    migrations_package="chat_service",
    build_servicer=build_servicer,
)


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GrpcServiceRole:
    return GrpcServiceRole(SPEC, cfg, cfg.chat_listen, embedded)
