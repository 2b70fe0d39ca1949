"""The PresenceService and PresenceInternalService servicers: validate and translate
proto <-> use cases.

Credentials are checked before a method runs, by the server interceptor, against the auth
mode each RPC declares: PresenceService RPCs run with the user's Principal bound
(``current_principal``); PresenceInternalService (ReportConnections, RelayAcks) takes only
the internal service credential of gateway pods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from grpc import aio
from minitg.presence.v1 import (
    presence_internal_service_pb2,
    presence_internal_service_pb2_grpc,
    presence_pb2,
    presence_service_pb2,
    presence_service_pb2_grpc,
)

from presence_service.domain.presence import ConnectionEvent, EventKind
from presence_service.usecases.acks import AckBatcher
from presence_service.usecases.tracker import PresenceTracker
from presence_service.usecases.typing_relay import TypingRelay
from svckit.authn import Principal, current_principal
from svckit.errors import DomainError, InvalidField, PermissionDenied

pb = presence_internal_service_pb2

MAX_EVENTS = 10_000
MAX_POD_ID = 253
MAX_SESSION_ID = 128
MAX_PRESENCE_IDS = 100
MAX_ACK_CHATS = 100
MAX_RELAYED_ACKS = 1000

_KINDS = {
    presence_pb2.CONNECTION_EVENT_KIND_CONNECTED: EventKind.CONNECTED,
    presence_pb2.CONNECTION_EVENT_KIND_HEARTBEAT: EventKind.HEARTBEAT,
    presence_pb2.CONNECTION_EVENT_KIND_DISCONNECTED: EventKind.DISCONNECTED,
}
_ACTIONS = {presence_pb2.TYPING_ACTION_TYPING: True, presence_pb2.TYPING_ACTION_CANCEL: False}


def connection_events(
    request: presence_internal_service_pb2.ReportConnectionsRequest,
) -> list[ConnectionEvent]:
    """The request's events as domain events; unknown kinds are skipped, as documented."""
    pod_id = request.pod_id
    if not pod_id or len(pod_id) > MAX_POD_ID or not pod_id.isprintable() or " " in pod_id:
        raise InvalidField("pod_id", f"pod_id must be 1 to {MAX_POD_ID} printable characters")
    if len(request.events) > MAX_EVENTS:
        raise InvalidField("events", f"at most {MAX_EVENTS} events per call")
    events: list[ConnectionEvent] = []
    for i, event in enumerate(request.events):
        if event.user_id < 1:
            raise InvalidField(f"events[{i}].user_id", "user_id must be at least 1")
        if not event.session_id or len(event.session_id) > MAX_SESSION_ID:
            raise InvalidField(f"events[{i}].session_id", "session_id is required")
        kind = _KINDS.get(event.kind)
        if kind is not None:
            events.append(ConnectionEvent(event.user_id, event.session_id, kind, event.at_ms))
    return events


def ack_chats(request: presence_service_pb2.AckUpdatesRequest) -> list[tuple[int, int]]:
    if request.max_pts < 0:
        raise InvalidField("max_pts", "max_pts must be 0 or more")
    if len(request.chats) > MAX_ACK_CHATS:
        raise InvalidField("chats", f"at most {MAX_ACK_CHATS} chats per ack")
    for i, chat in enumerate(request.chats):
        if chat.chat_id < 1:
            raise InvalidField(f"chats[{i}].chat_id", "chat_id must be at least 1")
        if chat.max_seq < 0:
            raise InvalidField(f"chats[{i}].max_seq", "max_seq must be 0 or more")
    return [(c.chat_id, c.max_seq) for c in request.chats]


class PresenceServicer(presence_service_pb2_grpc.PresenceServiceServicer):
    """minitg.presence.v1.PresenceService (every RPC AUTH_MODE_USER)."""

    def __init__(self, tracker: PresenceTracker, typing: TypingRelay, acks: AckBatcher) -> None:
        self._tracker, self._typing, self._acks = tracker, typing, acks

    async def GetPresence(
        self,
        request: presence_service_pb2.GetPresenceRequest,
        context: aio.ServicerContext[
            presence_service_pb2.GetPresenceRequest, presence_service_pb2.GetPresenceResponse
        ],
    ) -> presence_service_pb2.GetPresenceResponse:
        current_principal()  # any signed-in user may ask about any user
        if len(request.user_ids) > MAX_PRESENCE_IDS:
            raise InvalidField("user_ids", f"at most {MAX_PRESENCE_IDS} ids per call")
        user_ids: Sequence[int] = list(dict.fromkeys(request.user_ids))
        found = await self._tracker.presence_of(user_ids)
        return presence_service_pb2.GetPresenceResponse(
            presences=[
                presence_pb2.UserPresence(
                    user_id=p.user_id, online=p.online, last_seen_at_ms=p.last_seen_at_ms
                )
                for p in found
            ]
        )

    async def SetTyping(
        self,
        request: presence_service_pb2.SetTypingRequest,
        context: aio.ServicerContext[
            presence_service_pb2.SetTypingRequest, presence_service_pb2.SetTypingResponse
        ],
    ) -> presence_service_pb2.SetTypingResponse:
        caller = current_principal()
        if request.chat_id < 1:
            raise InvalidField("chat_id", "chat_id is required")
        typing = _ACTIONS.get(request.action)
        if typing is None:
            raise InvalidField("action", "action must be TYPING or CANCEL")
        await self._typing.set_typing(caller, request.chat_id, typing)
        return presence_service_pb2.SetTypingResponse()

    async def AckUpdates(
        self,
        request: presence_service_pb2.AckUpdatesRequest,
        context: aio.ServicerContext[
            presence_service_pb2.AckUpdatesRequest, presence_service_pb2.AckUpdatesResponse
        ],
    ) -> presence_service_pb2.AckUpdatesResponse:
        caller = current_principal()
        if request.session_id not in ("", caller.session_id):
            raise PermissionDenied("an ack can only be made for the caller's own session")
        chats = ack_chats(request)
        await self._acks.ack(caller, request.max_pts, chats)
        return presence_service_pb2.AckUpdatesResponse()


def _refusal(error: DomainError) -> pb.RelayAckResult:
    return pb.RelayAckResult(
        code=error.code.value[0], reason=error.reason, message=error.message,
        metadata=error.metadata,
    )  # fmt: skip


class PresenceInternalServicer(presence_internal_service_pb2_grpc.PresenceInternalServiceServicer):
    """minitg.presence.v1.PresenceInternalService (every RPC AUTH_MODE_SERVICE)."""

    def __init__(self, tracker: PresenceTracker, acks: AckBatcher) -> None:
        self._tracker, self._acks = tracker, acks

    async def ReportConnections(
        self,
        request: pb.ReportConnectionsRequest,
        context: aio.ServicerContext[pb.ReportConnectionsRequest, pb.ReportConnectionsResponse],
    ) -> pb.ReportConnectionsResponse:
        await self._tracker.report(request.pod_id, connection_events(request))
        return pb.ReportConnectionsResponse()

    async def RelayAcks(
        self,
        request: pb.RelayAcksRequest,
        context: aio.ServicerContext[pb.RelayAcksRequest, pb.RelayAcksResponse],
    ) -> pb.RelayAcksResponse:
        if not 1 <= len(request.items) <= MAX_RELAYED_ACKS:
            raise InvalidField("items", f"items must hold 1 to {MAX_RELAYED_ACKS} acks")
        results = [pb.RelayAckResult() for _ in request.items]
        accepted: list[Awaitable[None]] = []
        for index, item in enumerate(request.items):
            try:
                if item.user_id < 1 or not item.session_id:
                    raise InvalidField(f"items[{index}]", "an ack needs user_id and session_id")
                chats = ack_chats(item.ack)
            except DomainError as error:
                results[index].MergeFrom(_refusal(error))
                continue
            device = Principal(item.user_id, item.session_id, "")
            accepted.append(self._acks.ack(device, item.ack.max_pts, chats))
        await asyncio.gather(*accepted)  # one batch: a storage failure fails the call
        return pb.RelayAcksResponse(results=results)
