"""The presence service's tables: last-seen times and per-device delivered watermarks.

One SQL text per statement for PostgreSQL and SQLite (``$n`` placeholders, ``ON CONFLICT
... DO UPDATE ... WHERE``, which both engines support). Writes are batched by the callers:
one ``executemany`` per report or flush, never a statement per event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from presence_service.domain.acks import Watermark
from svckit.ports import Database

# Never backwards: a delayed or repeated write with an older value changes nothing.
_UPSERT_LAST_SEEN = """
INSERT INTO last_seen (user_id, last_seen_at_ms) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET last_seen_at_ms = excluded.last_seen_at_ms
WHERE last_seen.last_seen_at_ms < excluded.last_seen_at_ms
"""

_UPSERT_WATERMARK = """
INSERT INTO delivered_watermarks (session_id, user_id, max_pts, updated_at_ms)
VALUES ($1, $2, $3, $4)
ON CONFLICT (session_id) DO UPDATE
SET max_pts = excluded.max_pts, updated_at_ms = excluded.updated_at_ms
WHERE delivered_watermarks.max_pts < excluded.max_pts
"""

_IN_CHUNK = 500  # ids per IN list, well under both engines' parameter limits


def _placeholders(count: int) -> str:
    return ", ".join(f"${i}" for i in range(1, count + 1))


class PresenceStore:
    """Durable presence data behind the storage port."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record_last_seen(self, seen: Mapping[int, int]) -> None:
        """Move each user's last-seen forward to the given time (one transaction)."""
        if not seen:
            return
        rows = [(user_id, at_ms) for user_id, at_ms in sorted(seen.items())]
        async with self._db.transaction() as tx:
            await tx.executemany(_UPSERT_LAST_SEEN, rows)

    async def last_seen(self, user_ids: Sequence[int]) -> dict[int, int]:
        """User -> last-seen time, for the users that have one."""
        found: dict[int, int] = {}
        ids = sorted(set(user_ids))
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self._db.fetch(
                "SELECT user_id, last_seen_at_ms FROM last_seen"
                f" WHERE user_id IN ({_placeholders(len(chunk))})",
                *chunk,
            )
            found.update((int(r["user_id"]), int(r["last_seen_at_ms"])) for r in rows)
        return found

    async def save_watermarks(self, marks: Mapping[str, Watermark], now_ms: int) -> None:
        """Move each session's delivered pts forward (one transaction, in session order
        so concurrent flushes of two replicas lock rows in the same order)."""
        if not marks:
            return
        rows = [(s, m.user_id, m.max_pts, now_ms) for s, m in sorted(marks.items())]
        async with self._db.transaction() as tx:
            await tx.executemany(_UPSERT_WATERMARK, rows)

    async def watermarks(self, session_ids: Sequence[str]) -> dict[str, int]:
        """Session -> stored delivered pts, for the sessions that have one."""
        ids = sorted(set(session_ids))
        if not ids:
            return {}
        rows = await self._db.fetch(
            "SELECT session_id, max_pts FROM delivered_watermarks"
            f" WHERE session_id IN ({_placeholders(len(ids))})",
            *ids,
        )
        return {str(r["session_id"]): int(r["max_pts"]) for r in rows}
