"""Read-side queries: chats as a member sees them, chat lists, members and peers."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.adapters.rows import (
    MESSAGE_COLUMNS,
    among,
    member_from_row,
    members_of,
    message_from_row,
    placeholders,
)
from chat_service.domain.model import ChatKind, ChatView, Member, Message
from svckit.ports import Executor, Row

MAX_PEERS = 10_000
# Above every real (activity, id) pair: the keyset start of the first page.
_TOP = 2**62

_VIEW_SELECT = """
SELECT c.id, c.kind, c.title, c.created_at_ms, c.last_seq, c.member_count,
       c.last_activity_ms, m.read_inbox_seq, m.unread_count,
       (SELECT COALESCE(MAX(o.read_inbox_seq), 0) FROM chat_members o
         WHERE o.chat_id = c.id AND o.user_id <> m.user_id) AS read_outbox_seq
FROM chat_members m JOIN chats c ON c.id = m.chat_id
"""


def _view(row: Row, members: Sequence[Member], last: Message | None) -> ChatView:
    return ChatView(
        id=int(row["id"]),
        kind=ChatKind(int(row["kind"])),
        title=str(row["title"]),
        members=tuple(members),
        member_count=int(row["member_count"]),
        last_message=last,
        last_seq=int(row["last_seq"]),
        unread_count=int(row["unread_count"]),
        read_inbox_max_seq=int(row["read_inbox_seq"]),
        read_outbox_max_seq=int(row["read_outbox_seq"]),
        created_at_ms=int(row["created_at_ms"]),
    )


async def last_messages(ex: Executor, user_id: int, chat_ids: Sequence[int]) -> dict[int, Message]:
    """Per chat, the newest message ``user_id`` can see (not deleted, not hidden by them)."""
    if not chat_ids:
        return {}
    rows = await ex.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages m "
        f"WHERE m.chat_id IN ({placeholders(len(chat_ids), 2)}) AND m.seq = ("
        " SELECT MAX(x.seq) FROM messages x WHERE x.chat_id = m.chat_id"
        " AND x.deleted_at_ms IS NULL AND NOT EXISTS ("
        "  SELECT 1 FROM message_hidden h WHERE h.user_id = $1 AND h.message_id = x.id))",
        user_id,
        *chat_ids,
    )
    return {int(r["chat_id"]): message_from_row(r) for r in rows}


async def chat_view(ex: Executor, chat_id: int, user_id: int) -> ChatView | None:
    """The chat as ``user_id`` sees it with every member, or None for a non-member."""
    row = await ex.fetchrow(
        _VIEW_SELECT + "WHERE m.chat_id = $1 AND m.user_id = $2", chat_id, user_id
    )
    if row is None:
        return None
    members = await members_of(ex, chat_id)
    last = await last_messages(ex, user_id, [chat_id])
    return _view(row, members, last.get(chat_id))


async def list_views(
    ex: Executor, user_id: int, after: tuple[int, int] | None, limit: int
) -> list[tuple[ChatView, int]]:
    """A page of the user's chats, most recent activity first (ties: higher id first),
    strictly after the keyset ``(activity_ms, chat_id)``; each with its activity key."""
    activity, last_id = after or (_TOP, _TOP)
    rows = await ex.fetch(
        _VIEW_SELECT + "WHERE m.user_id = $1 AND (c.last_activity_ms < $2 OR "
        "(c.last_activity_ms = $2 AND c.id < $3)) "
        "ORDER BY c.last_activity_ms DESC, c.id DESC LIMIT $4",
        user_id,
        activity,
        last_id,
        limit,
    )
    ids = [int(r["id"]) for r in rows]
    last = await last_messages(ex, user_id, ids)
    direct = [int(r["id"]) for r in rows if r["kind"] == ChatKind.DIRECT]
    members: dict[int, list[Member]] = {}
    if direct:
        member_rows = await ex.fetch(
            "SELECT chat_id, user_id, role, joined_at_ms FROM chat_members "
            f"WHERE chat_id IN ({placeholders(len(direct))}) ORDER BY joined_at_ms, user_id",
            *direct,
        )
        for r in member_rows:
            members.setdefault(int(r["chat_id"]), []).append(member_from_row(r))
    return [
        (
            _view(r, members.get(int(r["id"]), []), last.get(int(r["id"]))),
            int(r["last_activity_ms"]),
        )
        for r in rows
    ]


async def member_ids(ex: Executor, chat_id: int) -> list[int]:
    """The ids of a chat's members, ascending; empty for an unknown chat."""
    rows = await ex.fetch(
        "SELECT user_id FROM chat_members WHERE chat_id = $1 ORDER BY user_id", chat_id
    )
    return [int(r["user_id"]) for r in rows]


async def members_of_chats(
    ex: Executor, chat_ids: Sequence[int]
) -> dict[int, tuple[ChatKind, list[int]]]:
    """chat id -> (kind, ascending member ids) for those of the chats that exist."""
    where, args = among(ex, "c.id", chat_ids)
    rows = await ex.fetch(
        "SELECT c.id AS chat_id, c.kind, m.user_id FROM chats c "
        f"JOIN chat_members m ON m.chat_id = c.id WHERE {where} ORDER BY c.id, m.user_id",
        *args,
    )
    found: dict[int, tuple[ChatKind, list[int]]] = {}
    for row in rows:
        entry = found.setdefault(int(row["chat_id"]), (ChatKind(int(row["kind"])), []))
        entry[1].append(int(row["user_id"]))
    return found


async def peers(ex: Executor, user_id: int, limit: int = MAX_PEERS) -> list[int]:
    """Everyone sharing at least one chat with ``user_id``, ascending, at most ``limit``."""
    rows = await ex.fetch(
        "SELECT DISTINCT o.user_id FROM chat_members m "
        "JOIN chat_members o ON o.chat_id = m.chat_id "
        "WHERE m.user_id = $1 AND o.user_id <> $1 ORDER BY o.user_id LIMIT $2",
        user_id,
        limit,
    )
    return [int(r["user_id"]) for r in rows]


async def peers_of_users(
    ex: Executor, user_ids: Sequence[int], limit: int = MAX_PEERS
) -> dict[int, list[int]]:
    """user id -> ``peers`` of that user, for every one of ``user_ids`` (an empty list for a
    user without peers), in one query: each user's cap is applied by the database, so a
    user in huge groups costs at most ``limit`` rows."""
    where, args = among(ex, "m.user_id", user_ids)
    rows = await ex.fetch(
        "SELECT asker, peer FROM ("
        " SELECT asker, peer, ROW_NUMBER() OVER (PARTITION BY asker ORDER BY peer) AS n FROM ("
        "  SELECT DISTINCT m.user_id AS asker, o.user_id AS peer FROM chat_members m"
        "  JOIN chat_members o ON o.chat_id = m.chat_id"
        f"  WHERE {where} AND o.user_id <> m.user_id) pairs) ranked"
        f" WHERE n <= ${len(args) + 1} ORDER BY asker, peer",
        *args,
        limit,
    )
    found: dict[int, list[int]] = {u: [] for u in user_ids}
    for row in rows:
        found[int(row["asker"])].append(int(row["peer"]))
    return found
