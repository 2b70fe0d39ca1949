"""The chat service's use cases: what each RPC does, between the servicer and the stores.

The servicer has already authenticated the caller and turned the request into domain
values; a use case decides (with the pure rules in ``domain``), calls the stores, and after
every commit that wrote an outbox row wakes the relay and drops stale member caches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chat_service.adapters import history, queries
from chat_service.adapters.deletes import Deleted, DeleteStore
from chat_service.adapters.edits import Edited, EditStore
from chat_service.adapters.log_reader import LogReader, LogState
from chat_service.adapters.member_cache import MemberCache
from chat_service.adapters.membership import Actor, Created, MembershipStore
from chat_service.adapters.messages import MessageStore, Outcome
from chat_service.adapters.updatelog import Outboxed
from chat_service.adapters.users import UserDirectory
from chat_service.domain import rules
from chat_service.domain.errors import ChatNotFound
from chat_service.domain.model import (
    Body,
    ChatKind,
    ChatView,
    Invited,
    Message,
    Outgoing,
    ReadRequest,
    ReadResult,
    SendItem,
)
from chat_service.usecases.read_batcher import ReadBatcher
from svckit.authn import Principal
from svckit.errors import InvalidField
from svckit.logs import request_id_var
from svckit.ports import Database

KIND_CACHE_SIZE = 100_000
MAX_CHATS_PER_LOOKUP = 1000
MAX_USERS_PER_LOOKUP = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured limits the use cases enforce."""

    max_group_members: int
    max_text_chars: int
    edit_window_seconds: int = 48 * 3600


class RelayHandle(Protocol):
    """What the use cases need of the outbox relay (``OutboxRelay``)."""

    def wake(self) -> None:
        """Look for unpublished outbox rows now."""
        ...

    def hand_over(self, row: Outboxed) -> None:
        """Publish this just-committed outbox row (written with ``handed_over``)."""
        ...


class ChatUseCases:
    """One method per RPC (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        users: UserDirectory,
        cache: MemberCache,
        reads: ReadBatcher,
        relay: RelayHandle,
        limits: Limits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db, self._users, self._cache, self._reads = db, users, cache, reads
        self._membership = MembershipStore(db)
        self._messages = MessageStore(db, relay.hand_over)
        self._log, self._edits, self._deletes = LogReader(db), EditStore(db), DeleteStore(db)
        self._wake, self.limits, self._clock = relay.wake, limits, clock
        self._kinds: dict[int, ChatKind] = {}  # fixed at creation, so never stale

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _actor(self, caller: Principal) -> Actor:
        return Actor(caller.user_id, caller.session_id, self.now_ms(), request_id_var.get())

    async def _view(self, chat_id: int, user_id: int) -> ChatView:
        view = await queries.chat_view(self._db, chat_id, user_id)
        if view is None:
            raise ChatNotFound()
        return view

    async def create_direct(self, caller: Principal, peer: int) -> tuple[ChatView, Created]:
        if peer <= 0 or peer == caller.user_id:
            raise InvalidField("peer_user_id", "peer_user_id must be another user's id")
        await self._users.require_existing([peer], caller)
        outcome = await self._membership.create_direct(self._actor(caller), peer)
        if outcome.created:
            self._wake()
        return await self._view(outcome.chat_id, caller.user_id), outcome

    async def create_group(
        self, caller: Principal, title: str, others: Sequence[int], client_request_id: str
    ) -> tuple[ChatView, Created]:
        title = rules.normalize_title(title)
        rules.validate_idempotency_id(client_request_id, "client_request_id", required=False)
        ids = rules.initial_group_members(caller.user_id, others, self.limits.max_group_members)
        await self._users.require_existing(ids[1:], caller)
        outcome = await self._membership.create_group(
            self._actor(caller), title, ids, client_request_id
        )
        if outcome.created:
            self._wake()
        return await self._view(outcome.chat_id, caller.user_id), outcome

    async def get_chat(self, caller: Principal, chat_id: int) -> ChatView:
        return await self._view(chat_id, caller.user_id)

    async def list_chats(
        self, caller: Principal, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[ChatView, int]]:
        return await queries.list_views(self._db, caller.user_id, after, limit)

    async def invite(self, caller: Principal, chat_id: int, user_ids: Sequence[int]) -> Invited:
        if not await self._cache.is_member(chat_id, caller.user_id):
            raise ChatNotFound()
        rules.ids_to_invite(user_ids, [], len(user_ids) + 1)  # shape checks only
        await self._users.require_existing(user_ids, caller)
        invited = await self._membership.invite(
            self._actor(caller), chat_id, user_ids, self.limits.max_group_members
        )
        if invited.added_user_ids:
            self._wake()
            await self._cache.invalidate(chat_id)
        return invited

    async def leave(self, caller: Principal, chat_id: int) -> int:
        pts = await self._membership.leave(self._actor(caller), chat_id)
        self._wake()
        await self._cache.invalidate(chat_id)
        return pts

    async def send(self, caller: Principal, items: Sequence[SendItem]) -> list[Outcome]:
        """Send one caller's validated items in one transaction; one outcome per item."""
        return await self.relay([Outgoing(caller.user_id, caller.session_id, i) for i in items])

    async def relay(self, sends: Sequence[Outgoing]) -> list[Outcome]:
        """Send validated items of any senders in one transaction (a gateway's batch); the
        store hands the committed outbox row to the relay itself."""
        return await self._messages.send(sends, self.now_ms(), request_id_var.get())

    async def read(self, caller: Principal, chat_id: int, max_seq: int) -> ReadResult:
        request = ReadRequest(caller.user_id, caller.session_id, chat_id, max_seq)
        return await self._reads.read(request, request_id_var.get())

    async def history(
        self, caller: Principal, chat_id: int, anchor: tuple[str, int] | None, limit: int
    ) -> tuple[list[Message], bool, bool]:
        """A page of visible messages, ascending, and whether older / newer ones exist.

        ``anchor`` is ("before", seq), ("after", seq) or ("around", seq); None is the
        newest page."""
        if not await self._cache.is_member(chat_id, caller.user_id):
            raise ChatNotFound()
        user, (where, seq) = caller.user_id, anchor or ("before", 2**62)
        if where == "before":
            page = await history.older(self._db, chat_id, user, seq, limit)
        elif where == "after":
            page = await history.newer(self._db, chat_id, user, seq, limit)
        else:
            page = await history.older(self._db, chat_id, user, seq, limit // 2)
            page += await history.newer(self._db, chat_id, user, seq - 1, limit - len(page))
        if not page:
            return [], False, False
        return (
            page,
            await history.has_older(self._db, chat_id, user, page[0].seq),
            await history.has_newer(self._db, chat_id, user, page[-1].seq),
        )

    async def edit(self, caller: Principal, chat_id: int, message_id: int, body: Body) -> Edited:
        window_ms = self.limits.edit_window_seconds * 1000
        edited = await self._edits.edit(self._actor(caller), chat_id, message_id, body, window_ms)
        if edited.pts:
            self._wake()
        return edited

    async def delete(
        self, caller: Principal, chat_id: int, message_ids: Sequence[int], for_everyone: bool
    ) -> Deleted:
        ids = rules.message_ids_to_delete(message_ids)
        deleted = await self._deletes.delete(self._actor(caller), chat_id, ids, for_everyone)
        if deleted.pts:
            self._wake()
        return deleted

    async def state(self, caller: Principal) -> LogState:
        return await self._log.state(caller.user_id)

    @property
    def log(self) -> LogReader:
        return self._log

    async def peers(self, user_id: int) -> list[int]:
        if user_id < 1:
            raise InvalidField("user_id", "user_id must be at least 1")
        return await queries.peers(self._db, user_id)

    async def peers_of(self, user_ids: Sequence[int]) -> dict[int, list[int]]:
        """Several users' peers in one query: every distinct user once, ascending, the ones
        without peers with an empty list."""
        if not 1 <= len(user_ids) <= MAX_USERS_PER_LOOKUP or min(user_ids) < 1:
            raise InvalidField(
                "user_ids", f"user_ids must hold 1 to {MAX_USERS_PER_LOOKUP} ids, each >= 1"
            )
        return await queries.peers_of_users(self._db, sorted(set(user_ids)))

    async def chats_members(self, chat_ids: Sequence[int]) -> dict[int, tuple[ChatKind, list[int]]]:
        """Several chats' kinds and members in one query (the unknown ones left out)."""
        if not 1 <= len(chat_ids) <= MAX_CHATS_PER_LOOKUP or min(chat_ids) < 1:
            raise InvalidField(
                "chat_ids", f"chat_ids must hold 1 to {MAX_CHATS_PER_LOOKUP} ids, each >= 1"
            )
        return await queries.members_of_chats(self._db, sorted(set(chat_ids)))

    async def chat_members(self, chat_id: int) -> tuple[ChatKind, list[int]]:
        """A chat's kind and current members (for other services' fan-out)."""
        if chat_id < 1:
            raise InvalidField("chat_id", "chat_id must be at least 1")
        members = await self._cache.members(chat_id)
        if not members:
            raise ChatNotFound()
        kind = self._kinds.get(chat_id)
        if kind is None:
            kind = ChatKind(
                await self._db.fetchval("SELECT kind FROM chats WHERE id = $1", chat_id)
            )
            if len(self._kinds) >= KIND_CACHE_SIZE:
                self._kinds.clear()
            self._kinds[chat_id] = kind
        return kind, members
