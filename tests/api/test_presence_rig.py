"""The presence api tests' rig: a running system, a chat-service double, fake gateway pods.

The chat-service double is a real grpc.aio server on 127.0.0.1:0 answering
``GetChatMembers``, ``BatchGetChatMembers`` and ``BatchListPeers`` (service credential
only) from chats the test declares and recording the batched calls, so presence is tested
against its real wire contract without depending on the chat service's progress. A fake
pod is a real queue on the system's bus bound to a fresh pod id, plus registry entries for
its users, as a gateway writes them.
(Named ``test_*`` only because the files of this suite must be; it holds no tests.)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from minitg.chat.v1 import chat_internal_service_pb2, chat_internal_service_pb2_grpc, chat_pb2
from minitg.delivery.v1 import delivery_pb2
from minitg.presence.v1 import (
    presence_internal_service_pb2,
    presence_internal_service_pb2_grpc,
    presence_pb2,
    presence_service_pb2,
    presence_service_pb2_grpc,
)

from svckit.authn import SERVICE_SCHEME, service_metadata
from svckit.backends import open_bus, open_database, open_hot_state
from svckit.errors import details_from_rpc_error, status_for
from svckit.ports import Database, Delivery, MessageBus
from svckit.registry import ConnectionRegistry, registry_namespace
from tests.harness import System, running_system
from tests.harness import TestUser as User

CONNECTED = presence_pb2.CONNECTION_EVENT_KIND_CONNECTED
HEARTBEAT = presence_pb2.CONNECTION_EVENT_KIND_HEARTBEAT
DISCONNECTED = presence_pb2.CONNECTION_EVENT_KIND_DISCONNECTED

FAST_ENV = {
    "MINITG_REGISTRY_TTL_SECONDS": "1",
    "MINITG_PRESENCE_DEBOUNCE_SECONDS": "0.3",
    "MINITG_TYPING_TTL_SECONDS": "6",
    "MINITG_SESSION_CHECK_TTL_SECONDS": "30",
}


class ChatDouble(chat_internal_service_pb2_grpc.ChatInternalServiceServicer):
    """GetChatMembers, BatchGetChatMembers and BatchListPeers over chats declared by the
    test."""

    def __init__(self) -> None:
        self.chats: dict[
            int, tuple[chat_pb2.ChatKind.ValueType, list[int]]
        ] = {}  # id -> kind, members
        self._next_id = 100
        self.batch_lookups: list[list[int]] = []  # the chat ids of each BatchGetChatMembers
        self.peer_lookups: list[list[int]] = []  # the user ids of each BatchListPeers

    def add_chat(self, members: Iterable[User], *, direct: bool = False) -> int:
        self._next_id += 1
        kind = chat_pb2.CHAT_KIND_DIRECT if direct else chat_pb2.CHAT_KIND_GROUP
        self.chats[self._next_id] = (kind, [u.id for u in members])
        return self._next_id

    async def GetChatMembers(
        self, request: Any, context: Any
    ) -> chat_internal_service_pb2.GetChatMembersResponse:
        await _require_service(context)
        kind, members = self.chats.get(request.chat_id, (chat_pb2.CHAT_KIND_UNSPECIFIED, []))
        if not members:
            await context.abort_with_status(
                status_for(grpc.StatusCode.NOT_FOUND, "CHAT_NOT_FOUND", "no such chat")
            )
        return chat_internal_service_pb2.GetChatMembersResponse(user_ids=sorted(members), kind=kind)

    async def BatchGetChatMembers(
        self, request: Any, context: Any
    ) -> chat_internal_service_pb2.BatchGetChatMembersResponse:
        await _require_service(context)
        self.batch_lookups.append(sorted(set(request.chat_ids)))
        return chat_internal_service_pb2.BatchGetChatMembersResponse(
            chats=[
                chat_internal_service_pb2.ChatMembers(
                    chat_id=c, user_ids=sorted(self.chats[c][1]), kind=self.chats[c][0]
                )
                for c in sorted(set(request.chat_ids))
                if c in self.chats
            ]
        )

    async def BatchListPeers(
        self, request: Any, context: Any
    ) -> chat_internal_service_pb2.BatchListPeersResponse:
        await _require_service(context)
        asked = sorted(set(request.user_ids))
        self.peer_lookups.append(asked)
        return chat_internal_service_pb2.BatchListPeersResponse(
            users=[
                chat_internal_service_pb2.UserPeers(user_id=u, peer_ids=self._peers(u))
                for u in asked
            ]
        )

    def _peers(self, user_id: int) -> list[int]:
        peers = {m for _, ms in self.chats.values() if user_id in ms for m in ms}
        peers.discard(user_id)
        return sorted(peers)


async def _require_service(context: Any) -> None:
    if not any(
        k == "authorization" and v.startswith(SERVICE_SCHEME + " ")
        for k, v in context.invocation_metadata()
    ):
        await context.abort_with_status(
            status_for(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "service only")
        )


@dataclass
class FakePod:
    """A gateway pod as presence sees it: a delivery queue and registry entries."""

    pod_id: str
    registry: ConnectionRegistry
    received: asyncio.Queue[delivery_pb2.DeliveryItem] = field(default_factory=asyncio.Queue)

    async def handle(self, delivery: Delivery) -> None:
        for item in delivery_pb2.DeliveryBatch.FromString(delivery.body).items:
            self.received.put_nowait(item)

    async def hold(self, *users: User) -> None:
        """Register the users' connections on this pod, as the gateway does."""
        for user in users:
            await self.registry.add(user.id, self.pod_id)

    async def next_item(self, timeout: float = 3.0) -> delivery_pb2.DeliveryItem:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def quiet(self, seconds: float) -> list[delivery_pb2.DeliveryItem]:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        await asyncio.sleep(seconds)
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items


@dataclass
class Rig:
    """Everything a presence api test talks to."""

    system: System
    chats: ChatDouble
    presence: presence_service_pb2_grpc.PresenceServiceAsyncStub
    registry: ConnectionRegistry
    bus: MessageBus
    database: Database
    internal: tuple[tuple[str, str], ...]
    presence_internal: presence_internal_service_pb2_grpc.PresenceInternalServiceAsyncStub

    async def pod(self) -> FakePod:
        pod = FakePod(f"pod-{secrets.token_hex(4)}", self.registry)
        await self.bus.subscribe(f"q-{pod.pod_id}", pod.pod_id, pod.handle)
        return pod

    async def report(self, pod: FakePod | str, *events: presence_pb2.ConnectionEvent) -> None:
        pod_id = pod if isinstance(pod, str) else pod.pod_id
        await self.presence_internal.ReportConnections(
            presence_internal_service_pb2.ReportConnectionsRequest(pod_id=pod_id, events=events),
            metadata=self.internal,
        )

    async def presence_of(self, caller: User, *users: User) -> list[tuple[bool, int]]:
        reply = await self.presence.GetPresence(
            presence_service_pb2.GetPresenceRequest(user_ids=[u.id for u in users]),
            metadata=caller.metadata(),
        )
        return [(p.online, p.last_seen_at_ms) for p in reply.presences]


def event(
    user: User,
    kind: presence_pb2.ConnectionEventKind.ValueType,
    at_ms: int = 0,
    session: str = "",
) -> presence_pb2.ConnectionEvent:
    return presence_pb2.ConnectionEvent(
        user_id=user.id, session_id=session or user.session_id, kind=kind, at_ms=at_ms
    )


def reason_of(error: aio.AioRpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    details = details_from_rpc_error(error)
    return details.code, details.reason, dict(details.metadata)


@asynccontextmanager
async def presence_rig(shape: str, tmp_path: Path, **env: str) -> AsyncIterator[Rig]:
    """Auth and presence on ``shape`` backends, with a chat-service double."""
    double = ChatDouble()  # type: ignore[abstract]  # the rest answers UNIMPLEMENTED
    server = aio.server()
    chat_internal_service_pb2_grpc.add_ChatInternalServiceServicer_to_server(double, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    full_env = FAST_ENV | {"MINITG_CHAT_TARGET": f"127.0.0.1:{port}"} | env
    try:
        async with running_system(shape, tmp_path, ("auth", "presence"), full_env) as system:
            cfg = system.cfg
            state = await open_hot_state(
                cfg.redis_url, registry_namespace(cfg.redis_prefix), embedded=system.embedded
            )
            bus = await open_bus(cfg.broker_url, embedded=system.embedded)
            database = await open_database(cfg.database_url, "presence")
            registry = ConnectionRegistry(state, cfg.messaging.registry_ttl_seconds * 30)
            try:
                yield Rig(
                    system,
                    double,
                    presence_service_pb2_grpc.PresenceServiceStub(system.channel("presence")),
                    registry,
                    bus,
                    database,
                    service_metadata(cfg.messaging.internal_token),
                    presence_internal_service_pb2_grpc.PresenceInternalServiceStub(
                        system.channel("presence")
                    ),
                )
            finally:
                await bus.close()
                await state.close()
                await database.close()
    finally:
        await server.stop(None)
