"""EditMessage's transaction: replace a message body and log MessageEdited to every member."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.adapters.membership import Actor
from chat_service.adapters.queries import member_ids
from chat_service.adapters.rows import (
    MESSAGE_COLUMNS,
    body_columns,
    in_transaction,
    message_from_row,
)
from chat_service.adapters.updatelog import LogBatch
from chat_service.adapters.write_sql import write_sql_for
from chat_service.domain import rules, updates
from chat_service.domain.errors import ChatNotFound
from chat_service.domain.model import Body, Message, UpdateKind
from svckit.errors import NotFound
from svckit.ports import Database, Executor
from svckit.reasons import Reason


@dataclass(frozen=True, slots=True)
class Edited:
    """The message after the edit and the editor's pts (0 when nothing changed)."""

    message: Message
    pts: int
    pts_count: int


class EditStore:
    """Edits messages (the caller's own, within the edit window, same body variant)."""

    def __init__(self, db: Database) -> None:
        self._db, self._sql = db, write_sql_for(db.dialect)

    async def edit(
        self, actor: Actor, chat_id: int, message_id: int, body: Body, window_ms: int
    ) -> Edited:
        async def work(tx: Executor) -> Edited:
            members = await member_ids(tx, chat_id)
            if actor.user_id not in members:
                raise ChatNotFound()
            row = await tx.fetchrow(
                f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 AND m.chat_id = $2 "
                "AND m.deleted_at_ms IS NULL",
                message_id,
                chat_id,
            )
            if row is None:
                raise NotFound("no such message in this chat", reason=Reason.MESSAGE_NOT_FOUND)
            old = message_from_row(row)
            new = rules.edited_message(old, actor.user_id, body, actor.now_ms, window_ms)
            if new is None:
                return Edited(old, 0, 0)
            changed = await tx.execute(
                "UPDATE messages SET body_kind = $2, body_text = $3, body_header = $4, "
                "body_ciphertext = $5, edited_at_ms = $6 WHERE id = $1 AND deleted_at_ms IS NULL",
                message_id,
                *body_columns(body),
                actor.now_ms,
            )
            if not changed:  # deleted for everyone since the SELECT above
                raise NotFound("no such message in this chat", reason=Reason.MESSAGE_NOT_FOUND)
            log = LogBatch(self._sql, actor.now_ms, actor.request_id)
            pending = log.reserve(UpdateKind.MESSAGE_EDITED, chat_id, members, actor.session_id)
            await log.allocate(tx)
            pending.fill(updates.message_edited(new))
            await log.write(tx)
            return Edited(new, pending.pts_of(actor.user_id), 1)

        return await in_transaction(self._db, work)
