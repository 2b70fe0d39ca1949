"""Reading a user's update log back: GetState and GetDifference."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from chat_service.adapters.rows import among
from svckit.ports import Database

CHUNK = 100


@dataclass(frozen=True, slots=True)
class LogState:
    """A user's log position and how many of their chats have unread messages."""

    pts: int
    unread_chats_count: int


class LogReader:
    """Replays the per-user update log."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def state(self, user_id: int) -> LogState:
        return (await self.states([user_id]))[user_id]

    async def states(self, user_ids: Sequence[int]) -> dict[int, LogState]:
        """``state`` of many users with two queries (a gateway's Hello frames in a burst)."""
        ids = sorted(set(user_ids))
        where, args = among(self._db, "user_id", ids)
        pts = await self._db.fetch(f"SELECT user_id, pts FROM user_pts WHERE {where}", *args)
        unread = await self._db.fetch(
            "SELECT user_id, COUNT(*) AS n FROM chat_members "
            f"WHERE {where} AND unread_count > 0 GROUP BY user_id",
            *args,
        )
        positions = {int(r["user_id"]): int(r["pts"]) for r in pts}
        counts = {int(r["user_id"]): int(r["n"]) for r in unread}
        return {u: LogState(positions.get(u, 0), counts.get(u, 0)) for u in ids}

    async def continues_from(self, user_id: int, pts: int) -> bool:
        """Whether the log still holds the update right after ``pts`` (not trimmed)."""
        row = await self._db.fetchrow(
            "SELECT pts, pts_count FROM updates WHERE user_id = $1 AND pts > $2 "
            "ORDER BY pts LIMIT 1",
            user_id,
            pts,
        )
        return row is not None and int(row["pts"]) - int(row["pts_count"]) == pts

    async def chunks(
        self, user_id: int, after: int, until: int, size: int = CHUNK
    ) -> AsyncIterator[list[bytes]]:
        """The stored payloads with ``after < pts <= until``, in pts order, ``size`` at a time."""
        while after < until:
            rows = await self._db.fetch(
                "SELECT pts, payload FROM updates WHERE user_id = $1 AND pts > $2 AND pts <= $3 "
                "ORDER BY pts LIMIT $4",
                user_id,
                after,
                until,
                size,
            )
            if not rows:
                return
            yield [bytes(r["payload"]) for r in rows]
            after = int(rows[-1]["pts"])
