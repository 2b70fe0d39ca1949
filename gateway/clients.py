"""The gateway's long-lived gRPC channels to the services, one per service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grpc import aio
from minitg.auth.v1 import auth_service_pb2_grpc
from minitg.chat.v1 import chat_service_pb2_grpc
from minitg.presence.v1 import presence_service_pb2_grpc

from svckit.config import Config
from svckit.grpc_calls import DirectStub
from svckit.grpc_server import check_peer_health, open_channel

AUTH_SERVICE = "minitg.auth.v1.AuthService"
CHAT_SERVICE = "minitg.chat.v1.ChatService"
PRESENCE_SERVICE = "minitg.presence.v1.PresenceService"


class ServiceClients:
    """Typed stubs over one channel per service; channels reconnect by themselves."""

    def __init__(self, cfg: Config) -> None:
        self._timeout = timeout = cfg.rpc_timeout_seconds
        self._channels: Mapping[str, aio.Channel] = {
            AUTH_SERVICE: open_channel(cfg.auth_target, timeout=timeout, intercepted=False),
            CHAT_SERVICE: open_channel(cfg.chat_target, timeout=timeout, intercepted=False),
            PRESENCE_SERVICE: open_channel(cfg.presence_target, timeout=timeout, intercepted=False),
        }

        # The gateway's calls skip grpc.aio's client interceptors (costly per call); the
        # stub proxy adds the deadline, request id, trace context and metrics itself.
        def direct(stub: Any, service: str) -> Any:
            return DirectStub(stub, service, timeout, stream_timeout=timeout * 6)

        self.auth: Any = direct(
            auth_service_pb2_grpc.AuthServiceStub(self._channels[AUTH_SERVICE]), AUTH_SERVICE
        )
        self.chat: Any = direct(
            chat_service_pb2_grpc.ChatServiceStub(self._channels[CHAT_SERVICE]), CHAT_SERVICE
        )
        self.presence: Any = direct(
            presence_service_pb2_grpc.PresenceServiceStub(self._channels[PRESENCE_SERVICE]),
            PRESENCE_SERVICE,
        )

    async def health(self) -> dict[str, bool]:
        """Ask each service's health endpoint whether it is SERVING."""
        results: dict[str, bool] = {}
        for service, channel in self._channels.items():
            short = service.split(".")[1]
            results[short] = await check_peer_health(
                channel, service, timeout=min(2.0, self._timeout)
            )
        return results

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
