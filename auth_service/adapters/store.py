"""The auth service's storage: users, sessions and refresh tokens on the storage port.

One SQL text per operation runs on PostgreSQL and SQLite alike (see ``svckit.ports``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auth_service.domain.refresh import RefreshRecord
from svckit.errors import AlreadyExists
from svckit.ports import Database, Executor, Row, UniqueViolation
from svckit.reasons import Reason


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    display_name: str
    password_hash: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: int
    device_name: str
    created_at_ms: int
    last_used_at_ms: int
    revoked_at_ms: int | None


_USER_COLUMNS = "id, email, display_name, password_hash, created_at_ms"
_SESSION_COLUMNS = "id, user_id, device_name, created_at_ms, last_used_at_ms, revoked_at_ms"


def _user(row: Row) -> UserRecord:
    return UserRecord(
        int(row["id"]),
        row["email"],
        row["display_name"],
        row["password_hash"],
        int(row["created_at_ms"]),
    )


def _session(row: Row) -> SessionRecord:
    return SessionRecord(
        row["id"],
        int(row["user_id"]),
        row["device_name"],
        int(row["created_at_ms"]),
        int(row["last_used_at_ms"]),
        row["revoked_at_ms"],
    )


class AccountStore:
    """Users, sessions and refresh tokens of the auth schema."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_user_with_session(
        self,
        *,
        email: str,
        email_key: str,
        display_name: str,
        password_hash: str,
        session_id: str,
        device_name: str,
        refresh_hash: bytes,
        refresh_expires_ms: int,
        now_ms: int,
    ) -> UserRecord:
        """Create an account and its first session atomically; EMAIL_TAKEN when another
        account has the same ``email_key`` (``accounts.email_key``)."""
        try:
            async with self._db.transaction() as tx:
                row = await tx.fetchrow(
                    "INSERT INTO users (email, email_key, display_name, password_hash, "
                    f"created_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING {_USER_COLUMNS}",
                    email,
                    email_key,
                    display_name,
                    password_hash,
                    now_ms,
                )
                assert row is not None
                user = _user(row)
                await self._insert_session(
                    tx, session_id, user.id, device_name, refresh_hash, refresh_expires_ms, now_ms
                )
                return user
        except UniqueViolation:
            raise AlreadyExists(
                "an account with this email already exists", reason=Reason.EMAIL_TAKEN
            ) from None

    async def create_session(
        self,
        *,
        user_id: int,
        session_id: str,
        device_name: str,
        refresh_hash: bytes,
        refresh_expires_ms: int,
        now_ms: int,
    ) -> None:
        async with self._db.transaction() as tx:
            await self._insert_session(
                tx, session_id, user_id, device_name, refresh_hash, refresh_expires_ms, now_ms
            )

    @staticmethod
    async def _insert_session(
        tx: Executor,
        session_id: str,
        user_id: int,
        device_name: str,
        refresh_hash: bytes,
        refresh_expires_ms: int,
        now_ms: int,
    ) -> None:
        await tx.execute(
            "INSERT INTO sessions (id, user_id, device_name, created_at_ms, last_used_at_ms) "
            "VALUES ($1, $2, $3, $4, $4)",
            session_id,
            user_id,
            device_name,
            now_ms,
        )
        await tx.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, generation, issued_at_ms, "
            "expires_at_ms) VALUES ($1, $2, 1, $3, $4)",
            refresh_hash,
            session_id,
            now_ms,
            refresh_expires_ms,
        )

    async def user_by_email(self, email_key: str) -> UserRecord | None:
        """The account whose ``email_key`` is this (never a comparison on ``email``, whose
        folding differs between the engines)."""
        row = await self._db.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE email_key = $1", email_key
        )
        return _user(row) if row else None

    async def user_by_id(self, user_id: int) -> UserRecord | None:
        row = await self._db.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
        return _user(row) if row else None

    async def users_by_ids(self, user_ids: Sequence[int]) -> list[UserRecord]:
        if not user_ids:
            return []
        marks = ", ".join(f"${i}" for i in range(1, len(user_ids) + 1))
        rows = await self._db.fetch(
            f"SELECT {_USER_COLUMNS} FROM users WHERE id IN ({marks}) ORDER BY id", *user_ids
        )
        return [_user(r) for r in rows]

    async def session(self, session_id: str) -> SessionRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1", session_id
        )
        return _session(row) if row else None

    async def sessions_of(self, user_id: int, *, after_id: str, limit: int) -> list[SessionRecord]:
        """Live sessions of a user, ordered by id, for keyset pagination."""
        rows = await self._db.fetch(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND id > $2 "
            "AND revoked_at_ms IS NULL ORDER BY id LIMIT $3",
            user_id,
            after_id,
            limit,
        )
        return [_session(r) for r in rows]

    async def revoke_session(self, session_id: str, reason: str, now_ms: int) -> bool:
        """Revoke a live session; return False when it was already revoked or absent."""
        changed = await self._db.execute(
            "UPDATE sessions SET revoked_at_ms = $2, revoke_reason = $3 "
            "WHERE id = $1 AND revoked_at_ms IS NULL",
            session_id,
            now_ms,
            reason,
        )
        return changed > 0

    async def revoked_since(self, since_ms: int) -> list[str]:
        """Ids of the sessions revoked at or after ``since_ms`` (to rebuild the hot list).

        A full scan without an index on revoked_at_ms: it runs only when the hot-state
        store has forgotten the list (a Redis restart or flush), not per request.
        """
        rows = await self._db.fetch("SELECT id FROM sessions WHERE revoked_at_ms >= $1", since_ms)
        return [row["id"] for row in rows]

    async def refresh_record(self, token_hash: bytes) -> RefreshRecord | None:
        row = await self._db.fetchrow(
            "SELECT r.session_id, s.user_id, r.generation, r.expires_at_ms, r.rotated_at_ms, "
            "s.revoked_at_ms, (SELECT MAX(n.generation) FROM refresh_tokens n "
            "WHERE n.session_id = r.session_id) AS newest "
            "FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id "
            "WHERE r.token_hash = $1",
            token_hash,
        )
        if row is None:
            return None
        return RefreshRecord(
            session_id=row["session_id"],
            user_id=int(row["user_id"]),
            generation=int(row["generation"]),
            expires_at_ms=int(row["expires_at_ms"]),
            rotated_at_ms=row["rotated_at_ms"],
            session_revoked=row["revoked_at_ms"] is not None,
            newest_generation=int(row["newest"]),
        )

    async def rotate(
        self,
        *,
        old_hash: bytes,
        session_id: str,
        new_hash: bytes,
        expires_ms: int,
        now_ms: int,
        retire_unseen_at_ms: int | None,
        unseen_generation: int = 0,
    ) -> bool:
        """Retire ``old_hash`` and store ``new_hash`` as the session's newest generation.

        On a grace retry (``retire_unseen_at_ms`` set) ``old_hash`` was already rotated; its
        unseen successor (``unseen_generation``) is retired instead, backdated past the grace
        window so that it showing up later counts as reuse. False when a concurrent rotation
        won, including a concurrent grace retry: the retire is guarded by the successor
        still being unused, so of two simultaneous retries exactly one succeeds.
        """
        retire = (
            (retire_unseen_at_ms, unseen_generation) if retire_unseen_at_ms is not None else None
        )
        try:
            return await self._rotate(old_hash, session_id, new_hash, expires_ms, now_ms, retire)
        except UniqueViolation:  # a concurrent rotation took the same generation first
            return False

    async def _rotate(
        self,
        old_hash: bytes,
        session_id: str,
        new_hash: bytes,
        expires_ms: int,
        now_ms: int,
        retire: tuple[int, int] | None,
    ) -> bool:
        async with self._db.transaction() as tx:
            if retire is not None:
                changed = await tx.execute(
                    "UPDATE refresh_tokens SET rotated_at_ms = $2 "
                    "WHERE session_id = $1 AND generation = $3 AND rotated_at_ms IS NULL",
                    session_id,
                    *retire,
                )
            else:
                changed = await tx.execute(
                    "UPDATE refresh_tokens SET rotated_at_ms = $2 "
                    "WHERE token_hash = $1 AND rotated_at_ms IS NULL",
                    old_hash,
                    now_ms,
                )
            if changed == 0:
                return False
            generation = await tx.fetchval(
                "SELECT MAX(generation) FROM refresh_tokens WHERE session_id = $1", session_id
            )
            await tx.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, generation, issued_at_ms, "
                "expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
                new_hash,
                session_id,
                int(generation or 0) + 1,
                now_ms,
                expires_ms,
            )
            await tx.execute(
                "UPDATE sessions SET last_used_at_ms = $2 WHERE id = $1", session_id, now_ms
            )
        return True
