"""Row <-> domain helpers and the transaction retry shared by the chat service's stores."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from chat_service.domain.model import Body, BodyKind, Member, Message, Role
from svckit.errors import Unavailable
from svckit.ports import Database, Executor, Row, StorageError, UniqueViolation

log = logging.getLogger("minitg.chat")
T = TypeVar("T")

MESSAGE_COLUMNS = (
    "m.id, m.chat_id, m.seq, m.sender_id, m.client_msg_id, m.body_kind, m.body_text, "
    "m.body_header, m.body_ciphertext, m.date_ms, m.edited_at_ms"
)


def placeholders(count: int, start: int = 1) -> str:
    """``$start, $start+1, ...`` for an IN list of ``count`` values."""
    return ", ".join(f"${i}" for i in range(start, start + count))


def among(ex: Executor, column: str, ids: Sequence[int], at: int = 1) -> tuple[str, list[Any]]:
    """``column`` is one of ``ids``, as SQL for placeholder ``$at`` on, and its arguments:
    one array parameter on PostgreSQL (the statement's text, and so asyncpg's cached plan,
    is the same for any number of ids), a placeholder per id on SQLite."""
    if ex.dialect == "postgres":
        return f"{column} = ANY(${at}::bigint[])", [list(ids)]
    return f"{column} IN ({placeholders(len(ids), at)})", list(ids)


def body_columns(body: Body) -> tuple[int, str | None, bytes | None, bytes | None]:
    """The (body_kind, body_text, body_header, body_ciphertext) columns of a body."""
    if body.kind is BodyKind.TEXT:
        return int(body.kind), body.text, None, None
    return int(body.kind), None, body.header, body.ciphertext


def body_from_row(row: Row) -> Body:
    if row["body_kind"] == BodyKind.TEXT:
        return Body(BodyKind.TEXT, text=row["body_text"] or "")
    return Body(
        BodyKind.ENCRYPTED,
        header=bytes(row["body_header"] or b""),
        ciphertext=bytes(row["body_ciphertext"] or b""),
    )


def message_from_row(row: Row) -> Message:
    return Message(
        id=int(row["id"]),
        chat_id=int(row["chat_id"]),
        seq=int(row["seq"]),
        sender_id=int(row["sender_id"]),
        date_ms=int(row["date_ms"]),
        body=body_from_row(row),
        edited_at_ms=int(row["edited_at_ms"] or 0),
        client_msg_id=str(row["client_msg_id"]),
    )


def member_from_row(row: Row) -> Member:
    return Member(int(row["user_id"]), Role(int(row["role"])), int(row["joined_at_ms"]))


async def members_of(ex: Executor, chat_id: int) -> list[Member]:
    """A chat's members in order of joining (ties by user id)."""
    rows = await ex.fetch(
        "SELECT user_id, role, joined_at_ms FROM chat_members WHERE chat_id = $1 "
        "ORDER BY joined_at_ms, user_id",
        chat_id,
    )
    return [member_from_row(r) for r in rows]


async def in_transaction(
    db: Database, work: Callable[[Executor], Awaitable[T]], *, attempts: int = 3
) -> T:
    """Run ``work`` in a transaction, retrying it on a lock conflict (deadlock,
    serialization failure) and on a unique violation, which here always means a
    concurrent twin of the same idempotent request committed first: the retry sees it."""
    for attempt in range(1, attempts + 1):
        try:
            async with db.transaction() as tx:
                return await work(tx)
        except UniqueViolation as exc:
            if attempt == attempts:
                raise Unavailable("a concurrent write kept conflicting; retry") from exc
        except StorageError as exc:
            if not exc.retryable:
                raise
            if attempt == attempts:
                raise Unavailable("the database is busy or unreachable; retry") from exc
            log.info("transaction conflict, retrying (%s/%s): %s", attempt, attempts, exc)
    raise AssertionError("unreachable")


def int_args(values: Sequence[Any]) -> list[int]:
    return [int(v) for v in values]
