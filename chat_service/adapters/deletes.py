"""DeleteMessages' transaction: delete for everyone, or hide from the caller's own view.

Deleted for everyone, a message keeps its row (id, seq, sender, client_msg_id, dates) with
``deleted_at_ms`` set and its body columns erased, so nothing can serve the content again
while its seq stays taken and a retried send still finds its first result. Hidden for one
member, it gets a ``message_hidden`` row. Readers skip both (history, last_message, unread).

Both take the chat's row lock first (the send transaction's first lock), so deletes are
serialised with sends and with each other on one chat: the unread counters they lower are
exactly the ones sends raise. Each logs one MessagesDeleted carrying every recipient's new
unread_count; a call that changes nothing logs nothing and returns pts 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chat_service.adapters.membership import Actor
from chat_service.adapters.rows import in_transaction, placeholders
from chat_service.adapters.updatelog import LogBatch
from chat_service.adapters.write_sql import WriteSql, write_sql_for
from chat_service.domain import rules, updates
from chat_service.domain.errors import ChatNotFound
from chat_service.domain.model import ChatKind, Role, UpdateKind
from svckit.ports import Database, Executor

_LOCK_CHAT = (
    "UPDATE chats SET last_seq = last_seq WHERE id = $1 AND EXISTS ("
    " SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2) RETURNING kind"
)
# What deleting the messages $2.. takes off each member's unread count: the ones above
# the member's watermark, sent by someone else, not already hidden by the member.
_UNREAD_LOST = (
    "SELECT COUNT(*) FROM messages x WHERE x.id IN ({ids}) "
    "AND x.seq > chat_members.read_inbox_seq AND x.sender_id <> chat_members.user_id "
    "AND NOT EXISTS (SELECT 1 FROM message_hidden h "
    " WHERE h.user_id = chat_members.user_id AND h.message_id = x.id)"
)


@dataclass(frozen=True, slots=True)
class Deleted:
    """The caller's pts after the MessagesDeleted update (0 and 0 when nothing changed)."""

    pts: int
    pts_count: int


@dataclass(frozen=True, slots=True)
class _Gone:
    """The messages a call actually removed, in seq order, and the recipients' unread
    counts after it (user -> count)."""

    ids: list[int]
    seqs: list[int]
    unread: dict[int, int] = field(default_factory=dict)


class DeleteStore:
    """Deletes messages (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db, self._sql = db, write_sql_for(db.dialect)

    async def delete(
        self, actor: Actor, chat_id: int, message_ids: Sequence[int], for_everyone: bool
    ) -> Deleted:
        async def work(tx: Executor) -> Deleted:
            kind = await tx.fetchval(_LOCK_CHAT, chat_id, actor.user_id)
            if kind is None:
                raise ChatNotFound()
            if for_everyone:
                gone = await _for_everyone(tx, actor, chat_id, ChatKind(int(kind)), message_ids)
            else:
                gone = await _for_me(tx, actor, chat_id, message_ids)
            if gone is None:  # nothing changed: nothing logged
                return Deleted(0, 0)
            return await _log(self._sql, tx, actor, chat_id, gone)

        return await in_transaction(self._db, work)


async def _for_everyone(
    tx: Executor, actor: Actor, chat_id: int, kind: ChatKind, message_ids: Sequence[int]
) -> _Gone | None:
    ids_sql = placeholders(len(message_ids), 2)
    rows = await tx.fetch(
        f"SELECT id, seq, sender_id FROM messages WHERE chat_id = $1 AND id IN ({ids_sql}) "
        "AND deleted_at_ms IS NULL ORDER BY seq",
        chat_id,
        *message_ids,
    )
    if not rows:
        return None
    role = await tx.fetchval(
        "SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2", chat_id, actor.user_id
    )
    rules.check_delete_for_everyone(
        actor.user_id, kind, Role(int(role)), [int(r["sender_id"]) for r in rows]
    )
    gone = _Gone([int(r["id"]) for r in rows], [int(r["seq"]) for r in rows])
    unread_rows = await tx.fetch(
        "UPDATE chat_members SET unread_count = unread_count - ("
        + _UNREAD_LOST.format(ids=placeholders(len(gone.ids), 2))
        + ") WHERE chat_id = $1 RETURNING user_id, unread_count",
        chat_id,
        *gone.ids,
    )
    await tx.execute(
        "UPDATE messages SET deleted_at_ms = $1, body_text = NULL, body_header = NULL, "
        f"body_ciphertext = NULL WHERE id IN ({placeholders(len(gone.ids), 2)})",
        actor.now_ms,
        *gone.ids,
    )
    gone.unread.update({int(r["user_id"]): int(r["unread_count"]) for r in unread_rows})
    return gone


async def _for_me(
    tx: Executor, actor: Actor, chat_id: int, message_ids: Sequence[int]
) -> _Gone | None:
    ids_sql = placeholders(len(message_ids), 3)
    rows = await tx.fetch(
        f"SELECT m.id, m.seq FROM messages m WHERE m.chat_id = $1 AND m.id IN ({ids_sql}) "
        "AND m.deleted_at_ms IS NULL AND NOT EXISTS (SELECT 1 FROM message_hidden h "
        " WHERE h.user_id = $2 AND h.message_id = m.id) ORDER BY m.seq",
        chat_id,
        actor.user_id,
        *message_ids,
    )
    if not rows:
        return None
    gone = _Gone([int(r["id"]) for r in rows], [int(r["seq"]) for r in rows])
    row = await tx.fetchrow(
        "UPDATE chat_members SET unread_count = unread_count - ("
        + _UNREAD_LOST.format(ids=placeholders(len(gone.ids), 3))
        + ") WHERE chat_id = $1 AND user_id = $2 RETURNING unread_count",
        chat_id,
        actor.user_id,
        *gone.ids,
    )
    assert row is not None  # the chat lock checked the membership
    await tx.executemany(
        "INSERT INTO message_hidden (user_id, chat_id, message_id) VALUES ($1, $2, $3)",
        [(actor.user_id, chat_id, message_id) for message_id in gone.ids],
    )
    gone.unread[actor.user_id] = int(row["unread_count"])
    return gone


async def _log(sql: WriteSql, tx: Executor, actor: Actor, chat_id: int, gone: _Gone) -> Deleted:
    """One MessagesDeleted for every recipient in ``gone.unread``, with their unread count."""
    log = LogBatch(sql, actor.now_ms, actor.request_id)
    recipients = sorted(gone.unread)
    pending = log.reserve(UpdateKind.MESSAGES_DELETED, chat_id, recipients, actor.session_id)
    await log.allocate(tx)
    pending.fill(*updates.messages_deleted(chat_id, gone.ids, gone.seqs, gone.unread))
    await log.write(tx)
    return Deleted(pending.pts_of(actor.user_id), 1)
