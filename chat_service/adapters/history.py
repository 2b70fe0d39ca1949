"""History pages: a chat's visible messages by seq, walked with keyset cursors.

Visible means not deleted for everyone and not hidden by the reader. Pages are keyed by
seq, which never changes, so a page is stable while others send: new messages only ever
appear after the newest seq.
"""

from __future__ import annotations

from chat_service.adapters.rows import MESSAGE_COLUMNS, message_from_row
from chat_service.domain.model import Message
from svckit.ports import Executor

_VISIBLE = (
    "m.chat_id = $1 AND m.deleted_at_ms IS NULL AND NOT EXISTS ("
    " SELECT 1 FROM message_hidden h WHERE h.user_id = $2 AND h.message_id = m.id)"
)


async def older(ex: Executor, chat_id: int, user_id: int, below: int, limit: int) -> list[Message]:
    """Up to ``limit`` visible messages with seq < ``below``, newest of them, ascending."""
    rows = await ex.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {_VISIBLE} AND m.seq < $3 "
        "ORDER BY m.seq DESC LIMIT $4",
        chat_id,
        user_id,
        below,
        limit,
    )
    return [message_from_row(r) for r in reversed(rows)]


async def newer(ex: Executor, chat_id: int, user_id: int, above: int, limit: int) -> list[Message]:
    """Up to ``limit`` visible messages with seq > ``above``, oldest of them, ascending."""
    rows = await ex.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {_VISIBLE} AND m.seq > $3 "
        "ORDER BY m.seq LIMIT $4",
        chat_id,
        user_id,
        above,
        limit,
    )
    return [message_from_row(r) for r in rows]


async def has_older(ex: Executor, chat_id: int, user_id: int, below: int) -> bool:
    return bool(await older(ex, chat_id, user_id, below, 1))


async def has_newer(ex: Executor, chat_id: int, user_id: int, above: int) -> bool:
    return bool(await newer(ex, chat_id, user_id, above, 1))
