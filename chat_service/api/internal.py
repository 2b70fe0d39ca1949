"""The ChatInternalService servicer: the chat RPCs for other minitg services.

Only the internal service credential reaches these methods (AUTH_MODE_SERVICE, enforced by
the server interceptor): the gateway's batched sends and Hello states, and the presence
service's membership questions. Callers vouch for the users they name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from grpc import aio
from minitg.chat.v1 import (
    chat_internal_service_pb2,
    chat_internal_service_pb2_grpc,
    chat_pb2,
    updates_pb2,
)

from chat_service.api.servicer import send_item, send_response
from chat_service.domain.model import Outgoing
from chat_service.usecases.chat import ChatUseCases
from svckit.errors import DomainError, InvalidField

MAX_STATES = 1000
MAX_RELAYED_SENDS = 500

pb = chat_internal_service_pb2


def _item_error(error: DomainError) -> pb.ItemError:
    return pb.ItemError(
        code=error.code.value[0],
        reason=error.reason,
        message=error.message,
        metadata=error.metadata,
    )


class ChatInternalServicer(chat_internal_service_pb2_grpc.ChatInternalServiceServicer):
    """minitg.chat.v1.ChatInternalService (every RPC AUTH_MODE_SERVICE)."""

    def __init__(self, cases: ChatUseCases) -> None:
        self._cases = cases

    async def RelaySends(
        self,
        request: pb.RelaySendsRequest,
        context: aio.ServicerContext[pb.RelaySendsRequest, pb.RelaySendsResponse],
    ) -> pb.RelaySendsResponse:
        if not 1 <= len(request.items) <= MAX_RELAYED_SENDS:
            raise InvalidField("items", f"items must hold 1 to {MAX_RELAYED_SENDS} sends")
        return pb.RelaySendsResponse(results=await self._send_batch(request.items))

    async def _send_batch(self, items: Sequence[pb.RelayedSend]) -> list[pb.SendMessageResult]:
        """Validate each item (failures are per item), send the valid ones together."""
        results: list[pb.SendMessageResult] = []
        valid: list[tuple[int, Outgoing]] = []
        max_text_chars = self._cases.limits.max_text_chars
        for index, relayed in enumerate(items):
            try:
                if relayed.user_id < 1 or not relayed.session_id:
                    raise InvalidField(f"items[{index}]", "a sender needs user_id and session_id")
                send = send_item(relayed.send, f"items[{index}].send.", max_text_chars)
                valid.append((index, Outgoing(relayed.user_id, relayed.session_id, send)))
            except DomainError as error:
                results.append(pb.SendMessageResult(error=_item_error(error)))
                continue
            results.append(pb.SendMessageResult())
        outcomes = await self._cases.relay([send for _, send in valid]) if valid else []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results[index].error.CopyFrom(_item_error(outcome))
            else:
                results[index].response.CopyFrom(send_response(outcome))
        return results

    async def GetStates(
        self,
        request: pb.GetStatesRequest,
        context: aio.ServicerContext[pb.GetStatesRequest, pb.GetStatesResponse],
    ) -> pb.GetStatesResponse:
        ids = list(request.user_ids)
        if not 1 <= len(ids) <= MAX_STATES or min(ids) < 1:
            raise InvalidField("user_ids", f"user_ids must hold 1 to {MAX_STATES} ids, each >= 1")
        found, now_ms = await self._cases.log.states(ids), self._cases.now_ms()
        return pb.GetStatesResponse(
            states=[
                updates_pb2.State(
                    pts=found[u].pts, date_ms=now_ms, unread_chats_count=found[u].unread_chats_count
                )
                for u in ids
            ]
        )

    async def ListPeers(
        self,
        request: pb.ListPeersRequest,
        context: aio.ServicerContext[pb.ListPeersRequest, pb.ListPeersResponse],
    ) -> pb.ListPeersResponse:
        return pb.ListPeersResponse(user_ids=await self._cases.peers(request.user_id))

    async def BatchListPeers(
        self,
        request: pb.BatchListPeersRequest,
        context: aio.ServicerContext[pb.BatchListPeersRequest, pb.BatchListPeersResponse],
    ) -> pb.BatchListPeersResponse:
        found = await self._cases.peers_of(list(request.user_ids))
        return pb.BatchListPeersResponse(
            users=[
                pb.UserPeers(user_id=user_id, peer_ids=peers)
                for user_id, peers in sorted(found.items())
            ]
        )

    async def GetChatMembers(
        self,
        request: pb.GetChatMembersRequest,
        context: aio.ServicerContext[pb.GetChatMembersRequest, pb.GetChatMembersResponse],
    ) -> pb.GetChatMembersResponse:
        kind, members = await self._cases.chat_members(request.chat_id)
        proto_kind = cast("chat_pb2.ChatKind.ValueType", int(kind))
        return pb.GetChatMembersResponse(user_ids=members, kind=proto_kind)

    async def BatchGetChatMembers(
        self,
        request: pb.BatchGetChatMembersRequest,
        context: aio.ServicerContext[pb.BatchGetChatMembersRequest, pb.BatchGetChatMembersResponse],
    ) -> pb.BatchGetChatMembersResponse:
        found = await self._cases.chats_members(list(request.chat_ids))
        return pb.BatchGetChatMembersResponse(
            chats=[
                pb.ChatMembers(
                    chat_id=chat_id,
                    user_ids=members,
                    kind=cast("chat_pb2.ChatKind.ValueType", int(kind)),
                )
                for chat_id, (kind, members) in sorted(found.items())
            ]
        )
