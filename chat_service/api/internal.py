"""The ChatService RPCs for other minitg services (internal credential only), apart from
RelaySends, which shares the send path with SendMessages in the servicer."""

from __future__ import annotations

from typing import Any, cast

from minitg.chat.v1 import chat_pb2, chat_service_pb2, updates_pb2

from chat_service.service import ChatUseCases
from svckit.authn import require_service_caller
from svckit.errors import InvalidField

MAX_STATES = 1000


class InternalRpcs:
    """GetStates, ListPeers, BatchListPeers, GetChatMembers and BatchGetChatMembers; mixed
    into ChatServicer."""

    _cases: ChatUseCases
    _internal_token: str

    async def GetStates(self, request: Any, context: Any) -> chat_service_pb2.GetStatesResponse:
        require_service_caller(context.invocation_metadata(), self._internal_token)
        ids = list(request.user_ids)
        if not 1 <= len(ids) <= MAX_STATES or min(ids) < 1:
            raise InvalidField("user_ids", f"user_ids must hold 1 to {MAX_STATES} ids, each >= 1")
        found, now_ms = await self._cases.log.states(ids), self._cases.now_ms()
        return chat_service_pb2.GetStatesResponse(
            states=[
                updates_pb2.State(
                    pts=found[u].pts, date_ms=now_ms, unread_chats_count=found[u].unread_chats_count
                )
                for u in ids
            ]
        )

    async def ListPeers(self, request: Any, context: Any) -> chat_service_pb2.ListPeersResponse:
        require_service_caller(context.invocation_metadata(), self._internal_token)
        return chat_service_pb2.ListPeersResponse(user_ids=await self._cases.peers(request.user_id))

    async def BatchListPeers(
        self, request: Any, context: Any
    ) -> chat_service_pb2.BatchListPeersResponse:
        require_service_caller(context.invocation_metadata(), self._internal_token)
        found = await self._cases.peers_of(list(request.user_ids))
        return chat_service_pb2.BatchListPeersResponse(
            users=[
                chat_service_pb2.UserPeers(user_id=user_id, peer_ids=peers)
                for user_id, peers in sorted(found.items())
            ]
        )

    async def GetChatMembers(
        self, request: Any, context: Any
    ) -> chat_service_pb2.GetChatMembersResponse:
        require_service_caller(context.invocation_metadata(), self._internal_token)
        kind, members = await self._cases.chat_members(request.chat_id)
        proto_kind = cast("chat_pb2.ChatKind.ValueType", int(kind))
        return chat_service_pb2.GetChatMembersResponse(user_ids=members, kind=proto_kind)

    async def BatchGetChatMembers(
        self, request: Any, context: Any
    ) -> chat_service_pb2.BatchGetChatMembersResponse:
        require_service_caller(context.invocation_metadata(), self._internal_token)
        found = await self._cases.chats_members(list(request.chat_ids))
        return chat_service_pb2.BatchGetChatMembersResponse(
            chats=[
                chat_service_pb2.ChatMembers(
                    chat_id=chat_id,
                    user_ids=members,
                    kind=cast("chat_pb2.ChatKind.ValueType", int(kind)),
                )
                for chat_id, (kind, members) in sorted(found.items())
            ]
        )
