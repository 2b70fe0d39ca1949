"""Who shares chats with whom: the chat service, seen through a small port.

Presence owns no membership data (each service owns its tables); it asks the chat service
over gRPC (ChatInternalService) with the internal service credential: ``BatchListPeers``
for the peers of every user whose presence changed at once, ``GetChatMembers`` for a
chat's kind and members, and ``BatchGetChatMembers`` for the chats of a whole batch of
acks in one call. A caller who
is not among the members gets CHAT_NOT_FOUND, exactly what the chat service would answer
them; so acks relayed by a gateway (which carry no user token) are checked the same way as
a user's own calls.

Chats are cached for ``cache_seconds`` (``MINITG_MEMBER_CACHE_SECONDS``): a cached chat
is used only when the caller is among its members; otherwise the chat service is asked.
So a member who left may still see typing or receipts of that chat for up to that long;
a new member is asked about right away.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc import aio
from minitg.chat.v1 import chat_internal_service_pb2, chat_internal_service_pb2_grpc, chat_pb2

from svckit.authn import Principal, service_metadata
from svckit.errors import DomainError, details_from_rpc_error
from svckit.reasons import Reason

BATCH_LOOKUP = 1000  # ids per BatchGetChatMembers or BatchListPeers call (the service's limit)


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """What presence needs to know about a chat."""

    chat_id: int
    direct: bool
    member_ids: tuple[int, ...]


class ChatDirectory(Protocol):
    """Membership questions presence asks the chat service."""

    async def peers_of(self, user_ids: Collection[int]) -> dict[int, list[int]]:
        """user id -> every user who shares at least one chat with them (never the user),
        for each of ``user_ids`` (an empty list for a user without peers). All or nothing:
        DomainError when the chat service cannot answer for some of them."""
        ...

    async def chat(self, chat_id: int, caller: Principal) -> ChatInfo:
        """The chat as ``caller`` sees it; DomainError CHAT_NOT_FOUND for a non-member."""
        ...

    async def chats(self, askers: Mapping[int, Collection[int]]) -> dict[int, ChatInfo]:
        """chat id -> the chat, for each chat of ``askers`` (chat id -> the users asking)
        that exists; the caller checks each asker's membership. DomainError when the chat
        service cannot answer."""
        ...


def _not_found() -> DomainError:
    missing = DomainError("chat not found", reason=Reason.CHAT_NOT_FOUND)
    missing.code = grpc.StatusCode.NOT_FOUND
    return missing


def _passed_through(error: aio.AioRpcError) -> DomainError:
    """The chat service's status as our own (same code, reason and metadata)."""
    details = details_from_rpc_error(error)
    passed = DomainError(details.message, reason=details.reason, metadata=details.metadata)
    passed.code = details.code
    return passed


class GrpcChatDirectory:
    """``ChatDirectory`` over a channel to the chat service, with a small chat cache."""

    def __init__(
        self,
        channel: aio.Channel,
        internal_token: str,
        *,
        cache_seconds: float,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = chat_internal_service_pb2_grpc.ChatInternalServiceStub(channel)
        self._service_md = service_metadata(internal_token)
        self._cache_seconds, self._capacity, self._clock = cache_seconds, capacity, clock
        self._cache: OrderedDict[int, tuple[ChatInfo, float]] = OrderedDict()

    async def peers_of(self, user_ids: Collection[int]) -> dict[int, list[int]]:
        ids = sorted(set(user_ids))
        found: dict[int, list[int]] = {u: [] for u in ids}
        for start in range(0, len(ids), BATCH_LOOKUP):
            request = chat_internal_service_pb2.BatchListPeersRequest(
                user_ids=ids[start : start + BATCH_LOOKUP]
            )
            try:
                reply = await self._stub.BatchListPeers(request, metadata=self._service_md)
            except aio.AioRpcError as exc:
                raise _passed_through(exc) from None
            for entry in reply.users:
                found[entry.user_id] = [u for u in entry.peer_ids if u != entry.user_id]
        return found

    def _cached(self, chat_id: int, users: Collection[int], now: float) -> ChatInfo | None:
        """The cached chat if it is fresh and every one of ``users`` is among its members
        (a new member is asked about right away)."""
        cached = self._cache.get(chat_id)
        if cached is None or cached[1] <= now or any(u not in cached[0].member_ids for u in users):
            return None
        return cached[0]

    def _remember(self, info: ChatInfo, now: float) -> None:
        if self._cache_seconds > 0:
            self._cache[info.chat_id] = (info, now + self._cache_seconds)
            self._cache.move_to_end(info.chat_id)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)

    async def chat(self, chat_id: int, caller: Principal) -> ChatInfo:
        now = self._clock()
        info = self._cached(chat_id, (caller.user_id,), now)
        if info is not None:
            return info
        try:
            reply = await self._stub.GetChatMembers(
                chat_internal_service_pb2.GetChatMembersRequest(chat_id=chat_id),
                metadata=self._service_md,
            )
        except aio.AioRpcError as exc:
            self._cache.pop(chat_id, None)
            raise _passed_through(exc) from None
        info = ChatInfo(chat_id, reply.kind == chat_pb2.CHAT_KIND_DIRECT, tuple(reply.user_ids))
        self._remember(info, now)
        if caller.user_id not in info.member_ids:
            raise _not_found()
        return info

    async def chats(self, askers: Mapping[int, Collection[int]]) -> dict[int, ChatInfo]:
        now, found, missing = self._clock(), {}, []
        for chat_id, users in askers.items():
            info = self._cached(chat_id, users, now)
            if info is None:
                missing.append(chat_id)
            else:
                found[chat_id] = info
        for start in range(0, len(missing), BATCH_LOOKUP):
            chunk = missing[start : start + BATCH_LOOKUP]
            try:
                reply = await self._stub.BatchGetChatMembers(
                    chat_internal_service_pb2.BatchGetChatMembersRequest(chat_ids=chunk),
                    metadata=self._service_md,
                )
            except aio.AioRpcError as exc:
                raise _passed_through(exc) from None
            for chat in reply.chats:
                info = ChatInfo(
                    chat.chat_id, chat.kind == chat_pb2.CHAT_KIND_DIRECT, tuple(chat.user_ids)
                )
                self._remember(info, now)
                found[info.chat_id] = info
            for chat_id in chunk:
                if chat_id not in found:
                    self._cache.pop(chat_id, None)
        return found
