"""Membership writes: creating chats, inviting and leaving, each with its logged updates.

Every write that changes a chat's membership first locks the chat's row (an UPDATE that
changes nothing but takes the row lock, the portable ``SELECT ... FOR UPDATE``), the same
lock a send takes to allocate its seq, so a send never fans out to a stale member list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from chat_service.adapters.queries import last_messages
from chat_service.adapters.rows import in_transaction, members_of
from chat_service.adapters.updatelog import LogBatch
from chat_service.adapters.write_sql import write_sql_for
from chat_service.domain import rules, updates
from chat_service.domain.errors import ChatNotFound, ClientRequestIdReused, GroupChatRequired
from chat_service.domain.model import ChatKind, Invited, Member, Role, UpdateKind
from svckit.ports import Database, Executor, Row

_INSERT_MEMBER = (
    "INSERT INTO chat_members (chat_id, user_id, role, joined_at_ms, read_inbox_seq) "
    "VALUES ($1, $2, $3, $4, $5)"
)
_LOCK_CHAT = (
    "UPDATE chats SET member_count = member_count WHERE id = $1 AND EXISTS ("
    " SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2) "
    "RETURNING id, kind, title, created_at_ms, last_seq, member_count"
)


class Created(NamedTuple):
    """The outcome of creating a chat: its id, whether this call created it, and the
    actor's pts of the NewChat it logged (0 when it logged none: the chat existed)."""

    chat_id: int
    created: bool
    pts: int = 0


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change and how it is logged: the caller, their session, when, request id."""

    user_id: int
    session_id: str
    now_ms: int
    request_id: str


class MembershipStore:
    """Creates chats and changes their membership (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db, self._sql = db, write_sql_for(db.dialect)

    async def create_direct(self, actor: Actor, peer: int) -> Created:
        """The direct chat of the actor and ``peer``, created on first use."""
        key = rules.direct_key(actor.user_id, peer)
        existing = await self._db.fetchval("SELECT id FROM chats WHERE direct_key = $1", key)
        if existing is not None:
            return Created(int(existing), False)

        async def work(tx: Executor) -> Created:
            found = await tx.fetchval("SELECT id FROM chats WHERE direct_key = $1", key)
            if found is not None:  # a concurrent twin won the race
                return Created(int(found), False)
            chat_id = await self._insert_chat(tx, actor, ChatKind.DIRECT, "", key, 2)
            members = rules.founding_members(ChatKind.DIRECT, [actor.user_id, peer], actor.now_ms)
            pts = await self._announce_new_chat(tx, actor, chat_id, ChatKind.DIRECT, "", members)
            return Created(chat_id, True, pts)

        return await in_transaction(self._db, work)

    async def create_group(
        self, actor: Actor, title: str, member_ids: Sequence[int], client_request_id: str
    ) -> Created:
        """Create a group (``member_ids[0]`` is the owner); with a client_request_id, a
        retry returns the first call's group (logging nothing) and a reuse with other
        fields fails."""
        fingerprint = rules.group_fingerprint(title, member_ids)

        async def work(tx: Executor) -> Created:
            if client_request_id:
                row = await tx.fetchrow(
                    "SELECT chat_id, fingerprint FROM chat_requests "
                    "WHERE user_id = $1 AND client_request_id = $2",
                    actor.user_id,
                    client_request_id,
                )
                if row is not None:
                    if row["fingerprint"] != fingerprint:
                        raise ClientRequestIdReused()
                    return Created(int(row["chat_id"]), False)
            chat_id = await self._insert_chat(
                tx, actor, ChatKind.GROUP, title, None, len(member_ids)
            )
            members = rules.founding_members(ChatKind.GROUP, member_ids, actor.now_ms)
            if client_request_id:
                await tx.execute(
                    "INSERT INTO chat_requests (user_id, client_request_id, fingerprint, "
                    "chat_id, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                    actor.user_id,
                    client_request_id,
                    fingerprint,
                    chat_id,
                    actor.now_ms,
                )
            pts = await self._announce_new_chat(tx, actor, chat_id, ChatKind.GROUP, title, members)
            return Created(chat_id, True, pts)

        return await in_transaction(self._db, work)

    async def _insert_chat(
        self, tx: Executor, actor: Actor, kind: ChatKind, title: str, key: str | None, count: int
    ) -> int:
        return int(
            await tx.fetchval(
                "INSERT INTO chats (kind, title, direct_key, created_by, created_at_ms, "
                "last_activity_ms, member_count) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
                int(kind),
                title,
                key,
                actor.user_id,
                actor.now_ms,
                count,
            )
        )

    async def _announce_new_chat(
        self,
        tx: Executor,
        actor: Actor,
        chat_id: int,
        kind: ChatKind,
        title: str,
        members: Sequence[Member],
    ) -> int:
        """Insert the members and log NewChat to each of them (the acting session excepted:
        the call's answer carries its pts); return the actor's pts."""
        await tx.executemany(
            _INSERT_MEMBER, [(chat_id, m.user_id, int(m.role), m.joined_at_ms, 0) for m in members]
        )
        view = updates.new_chat_view(chat_id, kind, title, actor.now_ms, 0, members, 0, 0)
        log = LogBatch(self._sql, actor.now_ms, actor.request_id)
        pending = log.reserve(
            UpdateKind.NEW_CHAT, chat_id, [m.user_id for m in members], actor.session_id
        )
        await log.allocate(tx)
        pending.fill(updates.new_chat(view, actor.user_id, for_user=actor.user_id))
        await log.write(tx)
        return pending.pts_of(actor.user_id)

    async def invite(
        self, actor: Actor, chat_id: int, requested: Sequence[int], max_members: int
    ) -> Invited:
        """Add the requested users who are not members yet (all or nothing)."""

        async def work(tx: Executor) -> Invited:
            chat = await _lock_group(tx, chat_id, actor.user_id)
            old = await members_of(tx, chat_id)
            added = rules.ids_to_invite(requested, [m.user_id for m in old], max_members)
            if not added:
                return Invited((), len(old), 0, 0)
            last_seq = int(chat["last_seq"])
            new = rules.invited_members(added, actor.now_ms)
            await tx.executemany(
                _INSERT_MEMBER,
                [(chat_id, m.user_id, int(m.role), m.joined_at_ms, last_seq) for m in new],
            )
            count = len(old) + len(new)
            await tx.execute("UPDATE chats SET member_count = $2 WHERE id = $1", chat_id, count)
            pts = await self._log_joined(tx, actor, chat, old, new)
            return Invited(tuple(added), count, pts, 1)

        return await in_transaction(self._db, work)

    async def _log_joined(
        self, tx: Executor, actor: Actor, chat: Row, old: Sequence[Member], new: Sequence[Member]
    ) -> int:
        """NewChat to the new members, MembersJoined to the others; the actor's pts."""
        chat_id, last_seq = int(chat["id"]), int(chat["last_seq"])
        watermarks = await tx.fetch(
            "SELECT MAX(read_inbox_seq) AS top FROM chat_members WHERE chat_id = $1", chat_id
        )
        last = await last_messages(tx, new[0].user_id, [chat_id])
        view = updates.new_chat_view(
            chat_id, ChatKind(int(chat["kind"])), str(chat["title"]),
            int(chat["created_at_ms"]), last_seq, [*old, *new],
            last_seq, int(watermarks[0]["top"] or 0), last.get(chat_id),
        )  # fmt: skip
        log = LogBatch(self._sql, actor.now_ms, actor.request_id)
        welcome = log.reserve(UpdateKind.NEW_CHAT, chat_id, [m.user_id for m in new])
        joined = log.reserve(
            UpdateKind.MEMBERS_JOINED, chat_id, [m.user_id for m in old], actor.session_id
        )
        await log.allocate(tx)
        welcome.fill(updates.new_chat(view, actor.user_id, for_user=0))
        joined.fill(updates.members_joined(chat_id, new, actor.user_id, len(old) + len(new)))
        await log.write(tx)
        return joined.pts_of(actor.user_id)

    async def leave(self, actor: Actor, chat_id: int) -> int:
        """Remove the actor from a group, passing ownership on; return the actor's pts."""

        async def work(tx: Executor) -> int:
            await _lock_group(tx, chat_id, actor.user_id)
            members = await members_of(tx, chat_id)
            leaver = next(m for m in members if m.user_id == actor.user_id)
            remaining = [m for m in members if m.user_id != actor.user_id]
            await tx.execute(
                "DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2",
                chat_id,
                actor.user_id,
            )
            await tx.execute(
                "UPDATE chats SET member_count = $2 WHERE id = $1", chat_id, len(remaining)
            )
            new_owner = rules.next_owner(remaining) if leaver.role is Role.OWNER else 0
            if new_owner:
                await tx.execute(
                    "UPDATE chat_members SET role = $3 WHERE chat_id = $1 AND user_id = $2",
                    chat_id,
                    new_owner,
                    int(Role.OWNER),
                )
            log = LogBatch(self._sql, actor.now_ms, actor.request_id)
            recipients = [actor.user_id, *(m.user_id for m in remaining)]
            left = log.reserve(UpdateKind.MEMBER_LEFT, chat_id, recipients, actor.session_id)
            await log.allocate(tx)
            left.fill(updates.member_left(chat_id, actor.user_id, len(remaining), new_owner))
            await log.write(tx)
            return left.pts_of(actor.user_id)

        return await in_transaction(self._db, work)


async def _lock_group(tx: Executor, chat_id: int, user_id: int) -> Row:
    """Lock a group the user belongs to; CHAT_NOT_FOUND / GROUP_CHAT_REQUIRED otherwise."""
    row = await tx.fetchrow(_LOCK_CHAT, chat_id, user_id)
    if row is None:
        raise ChatNotFound()
    if int(row["kind"]) != ChatKind.GROUP:
        raise GroupChatRequired()
    return row
