"""The port of the write path's set-at-a-time statements, one per step whatever the
batch size, with one implementation per SQL dialect (chosen once, by ``write_sql_for``):

* ``sql_postgres.PostgresWriteSql``: every step is ONE statement whose text never
  changes; the batch travels as arrays (``unnest``/``ANY``), so asyncpg's per-connection
  statement cache always hits (statements built with one placeholder per value have a
  different text for every batch size and missed the 100-entry cache nearly every time: a
  Parse round trip and a fresh plan per statement) and a batch of 100 costs the same round
  trips as a batch of one;
* ``sql_sqlite.SqliteWriteSql``: SQLite has no arrays; the same steps run as portable
  per-row statements (the database is in-process and has a single writer, so round trips
  and lock order matter little).

Both pass the same contract tests (``tests/contract/test_chat_*.py``). Decisions are not
made here: the domain (``chat_service.domain.send_plan``) says what to write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chat_service.domain.send_plan import SenderRead
from svckit.ports import Dialect, Executor, Row

STORED_COLUMNS = (
    "id, sender_id, chat_id, seq, date_ms, sender_pts, client_msg_id, body_kind, "
    "body_text, body_header, body_ciphertext, deleted_at_ms"
)
MESSAGE_INSERT_COLUMNS = (
    "id, chat_id, seq, sender_id, client_msg_id, body_kind, body_text, body_header, "
    "body_ciphertext, date_ms, sender_pts"
)
OUTBOX_INSERT = (
    "INSERT INTO outbox (payload, created_at_ms, handed_over) VALUES ($1, $2, $3) RETURNING id"
)
PTS_UPSERT = (
    "ON CONFLICT (user_id) DO UPDATE SET pts = user_pts.pts + excluded.pts RETURNING user_id, pts"
)


@dataclass(frozen=True, slots=True)
class ChatLock:
    """One chat a batch writes to: how many seqs it takes and who sends in it."""

    chat_id: int
    count: int
    senders: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the send's middle step returns."""

    unread: list[tuple[int, int, int]]  # (chat_id, user_id, unread_count) of the members
    last_pts: dict[int, int]  # user -> their pts counter after the bump
    message_ids: list[int]  # fresh ids for the batch's messages, ascending


class WriteSql(Protocol):
    """The write path's statements (see the module docstring). Every method runs inside
    the caller's transaction ``tx``; locks are taken in the order chats -> chat_members ->
    user_pts, each set in ascending id."""

    async def stored_messages(self, tx: Executor, pairs: Sequence[tuple[int, str]]) -> list[Row]:
        """The messages (``STORED_COLUMNS``) already sent under any of the
        (sender, client_msg_id) pairs."""
        ...

    async def lock_chats(
        self, tx: Executor, chats: Sequence[ChatLock], now_ms: int
    ) -> dict[int, Row]:
        """Take ``count`` seqs in each chat one of whose senders is a member, locking those
        chats in ascending id and raising their activity to ``now_ms``; chat id -> its
        ``last_seq`` and ``last_activity_ms`` after. Other chats are neither locked nor
        returned."""
        ...

    async def give_back_seqs(self, tx: Executor, chat_id: int, count: int) -> None:
        """Lower a locked chat's ``last_seq`` by ``count`` (seqs taken for items that were
        then refused), so seqs stay gapless."""
        ...

    async def chat_members(
        self, tx: Executor, chat_ids: Sequence[int]
    ) -> list[tuple[int, int, int]]:
        """(chat_id, user_id, unread_count) of every member of the chats, by chat then user."""
        ...

    async def prepare_send(
        self,
        tx: Executor,
        counts: Mapping[int, int],
        senders: Sequence[SenderRead],
        pts: Mapping[int, int],
        messages: int,
    ) -> Prepared:
        """Apply the batch's unread changes (``counts``: chat id -> its messages in the
        batch, added to every member's unread but the senders', whose marks are
        ``senders``), bump the pts counters by ``pts``, take ``messages`` ids."""
        ...

    async def write_send(
        self,
        tx: Executor,
        messages: Sequence[Sequence[object]],
        updates: Sequence[tuple[object, ...]],
        outbox: tuple[bytes, int, bool],
    ) -> int:
        """Insert the messages (rows of ``MESSAGE_INSERT_COLUMNS``), the update-log rows
        (user_id, pts, kind, chat_id, payload, date_ms; one kind and one date for the whole
        send) and the outbox row (payload, created_at_ms, handed_over); return its id."""
        ...

    async def bump_pts(self, tx: Executor, counts: Mapping[int, int]) -> dict[int, int]:
        """Add ``counts[user]`` to each user's pts counter (creating it at 0), in ascending
        user id (the lock order); return the new values."""
        ...

    async def insert_updates(self, tx: Executor, rows: Sequence[tuple[object, ...]]) -> None:
        """Insert update-log rows of (user_id, pts, kind, chat_id, payload, date_ms)."""
        ...


def write_sql_for(dialect: Dialect) -> WriteSql:
    """The implementation for a database's dialect (a store picks it once, at construction)."""
    # Imported here: the implementations import this module's values.
    from chat_service.adapters.sql_postgres import PostgresWriteSql
    from chat_service.adapters.sql_sqlite import SqliteWriteSql

    return PostgresWriteSql() if dialect == "postgres" else SqliteWriteSql()
