"""The gateway's long-lived gRPC channels to the services, one per service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar, cast

from grpc import aio
from minitg.auth.v1 import auth_internal_service_pb2_grpc, auth_service_pb2_grpc
from minitg.chat.v1 import chat_internal_service_pb2_grpc, chat_service_pb2_grpc
from minitg.presence.v1 import presence_internal_service_pb2_grpc, presence_service_pb2_grpc

from svckit.config import Config
from svckit.grpc_calls import DirectStub
from svckit.grpc_server import check_peer_health, open_channel

AUTH_SERVICE = "minitg.auth.v1.AuthService"
CHAT_SERVICE = "minitg.chat.v1.ChatService"
PRESENCE_SERVICE = "minitg.presence.v1.PresenceService"
AUTH_INTERNAL_SERVICE = "minitg.auth.v1.AuthInternalService"
CHAT_INTERNAL_SERVICE = "minitg.chat.v1.ChatInternalService"
PRESENCE_INTERNAL_SERVICE = "minitg.presence.v1.PresenceInternalService"

_Stub = TypeVar("_Stub")


class ServiceClients:
    """Typed stubs over one channel per service (its public and internal RPCs share the
    channel); channels reconnect by themselves."""

    def __init__(self, cfg: Config) -> None:
        self._timeout = timeout = cfg.rpc_timeout_seconds
        self._channels: Mapping[str, aio.Channel] = {
            AUTH_SERVICE: open_channel(cfg.auth_target, timeout=timeout, intercepted=False),
            CHAT_SERVICE: open_channel(cfg.chat_target, timeout=timeout, intercepted=False),
            PRESENCE_SERVICE: open_channel(cfg.presence_target, timeout=timeout, intercepted=False),
        }
        auth, chat = self._channels[AUTH_SERVICE], self._channels[CHAT_SERVICE]
        presence = self._channels[PRESENCE_SERVICE]

        # The gateway's calls skip grpc.aio's client interceptors (costly per call); the
        # stub proxy adds the deadline, request id, trace context and metrics itself. It
        # is typed as the generated async stub it wraps, so mypy checks requests and
        # replies; it takes the same (request, *, metadata, timeout) and is awaited alike.
        def direct(stub: _Stub, service: str) -> _Stub:
            return cast(_Stub, DirectStub(stub, service, timeout, stream_timeout=timeout * 6))

        self.auth = direct(auth_service_pb2_grpc.AuthServiceStub(auth), AUTH_SERVICE)
        self.chat = direct(chat_service_pb2_grpc.ChatServiceStub(chat), CHAT_SERVICE)
        self.presence = direct(
            presence_service_pb2_grpc.PresenceServiceStub(presence), PRESENCE_SERVICE
        )
        self.auth_internal = direct(
            auth_internal_service_pb2_grpc.AuthInternalServiceStub(auth),
            AUTH_INTERNAL_SERVICE,
        )
        self.chat_internal = direct(
            chat_internal_service_pb2_grpc.ChatInternalServiceStub(chat),
            CHAT_INTERNAL_SERVICE,
        )
        self.presence_internal = direct(
            presence_internal_service_pb2_grpc.PresenceInternalServiceStub(presence),
            PRESENCE_INTERNAL_SERVICE,
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
