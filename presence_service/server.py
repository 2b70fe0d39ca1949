"""The presence role's composition root."""

from __future__ import annotations

from contextlib import AsyncExitStack

from grpc import aio
from minitg.presence.v1 import presence_service_pb2_grpc

from presence_service.api.servicer import PresenceServicer
from svckit.backends import EmbeddedBackends
from svckit.config import Config
from svckit.service_role import Backends, GrpcServiceRole, Register, ServiceSpec

SERVICE_NAME = "minitg.presence.v1.PresenceService"


async def build_servicer(cfg: Config, backends: Backends, stack: AsyncExitStack) -> Register:
    """Wire the presence service's domain and adapters; return its registration function."""
    # Not built yet: the base class answers UNIMPLEMENTED (abstract only to type checkers).
    servicer = PresenceServicer()  # type: ignore[abstract]

    def register(server: aio.Server) -> None:
        presence_service_pb2_grpc.add_PresenceServiceServicer_to_server(servicer, server)

    return register


SPEC = ServiceSpec(
    role="presence",
    service_name=SERVICE_NAME,
    uses=frozenset({"database", "hot_state", "bus"}),
    migrations_package="presence_service",
    build_servicer=build_servicer,
)


def build_role(cfg: Config, embedded: EmbeddedBackends) -> GrpcServiceRole:
    return GrpcServiceRole(SPEC, cfg, cfg.presence_listen, embedded)
