"""The auth service's use cases: register, sign in, refresh, sign out, sessions, profiles.

Reads like the flows in docs/ARCHITECTURE.md: validate (domain), do the I/O (adapters), decide
(domain), issue tokens. Every failure is a DomainError with the reason the client sees.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from auth_service.adapters.passwords import PasswordHasher
from auth_service.adapters.store import AccountStore, SessionRecord, UserRecord
from auth_service.domain import accounts
from auth_service.domain.refresh import (
    RefreshVerdict,
    hash_refresh_token,
    judge,
    new_refresh_token,
    new_session_id,
)
from svckit.config import AuthConfig
from svckit.errors import NotFound, Unauthenticated, Unavailable
from svckit.reasons import Reason
from svckit.tokens import SigningKey, TokenIssuer, public_jwk

_BAD_CREDENTIALS = "the email or password is incorrect"


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_ttl: int
    refresh_ttl: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: UserRecord
    session_id: str
    tokens: Tokens


class AuthUseCases:
    """Accounts and sessions; constructed once per process by the composition root."""

    def __init__(
        self,
        store: AccountStore,
        hasher: PasswordHasher,
        keys: Sequence[SigningKey],
        cfg: AuthConfig,
        clock: Callable[[], float] = time.time,
        on_revoke: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> None:
        self._store, self._hasher, self._cfg, self._clock = store, hasher, cfg, clock
        self._on_revoke = on_revoke
        self._keys = list(keys)
        self._issuer = TokenIssuer(
            self._keys[-1],
            issuer=cfg.issuer,
            audience=cfg.audience,
            ttl_seconds=cfg.access_ttl_seconds,
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _tokens(self, user_id: int, session_id: str, refresh_token: str) -> Tokens:
        access, _ = self._issuer.issue(user_id, session_id, self._clock())
        return Tokens(
            access, refresh_token, self._cfg.access_ttl_seconds, self._cfg.refresh_ttl_seconds
        )

    async def register(
        self, email: str, password: str, display_name: str, device_name: str
    ) -> SignedIn:
        email = accounts.normalize_email(email)
        secret = accounts.validate_password(password)
        name = accounts.normalize_display_name(display_name)
        device = accounts.normalize_device_name(device_name)
        password_hash = await self._hasher.hash(secret)
        session_id, now_ms = new_session_id(), self._now_ms()
        refresh, refresh_hash = new_refresh_token()
        user = await self._store.create_user_with_session(
            email=email, email_key=accounts.email_key(email),
            display_name=name, password_hash=password_hash,
            session_id=session_id, device_name=device, refresh_hash=refresh_hash,
            refresh_expires_ms=now_ms + self._cfg.refresh_ttl_seconds * 1000, now_ms=now_ms,
        )  # fmt: skip
        return SignedIn(user, session_id, self._tokens(user.id, session_id, refresh))

    async def login(self, email: str, password: str, device_name: str) -> SignedIn:
        """Same error, message and (on average) time for an unknown email and a wrong password."""
        secret = password.encode("utf-8", errors="replace")
        key = accounts.lookup_key(email)
        shaped = len(secret) <= accounts.PASSWORD_MAX_BYTES and key is not None
        user = await self._store.user_by_email(key) if key is not None and shaped else None
        ok = await self._hasher.check(secret[: accounts.PASSWORD_MAX_BYTES], _hash_of(user))
        if user is None or not ok or not shaped:
            raise Unauthenticated(_BAD_CREDENTIALS, reason=Reason.INVALID_CREDENTIALS)
        device = accounts.normalize_device_name(device_name)
        session_id, now_ms = new_session_id(), self._now_ms()
        refresh, refresh_hash = new_refresh_token()
        await self._store.create_session(
            user_id=user.id, session_id=session_id, device_name=device,
            refresh_hash=refresh_hash,
            refresh_expires_ms=now_ms + self._cfg.refresh_ttl_seconds * 1000, now_ms=now_ms,
        )  # fmt: skip
        return SignedIn(user, session_id, self._tokens(user.id, session_id, refresh))

    async def refresh(self, refresh_token: str) -> tuple[str, Tokens]:
        """Rotate a refresh token; reuse after the grace window revokes the session."""
        old_hash = hash_refresh_token(refresh_token)
        for _ in range(3):  # a lost race against a concurrent rotation is re-judged
            record = await self._store.refresh_record(old_hash)
            if record is None:
                raise Unauthenticated(
                    "the refresh token is not valid", reason=Reason.REFRESH_TOKEN_INVALID
                )
            now_ms = self._now_ms()
            grace_ms = int(self._cfg.refresh_grace_seconds * 1000)
            verdict = judge(record, now_ms, grace_ms)
            self._refuse(verdict)
            if verdict is RefreshVerdict.REUSED:
                await self._end_session(
                    record.user_id, record.session_id, "refresh_token_reuse", now_ms
                )
                raise Unauthenticated(
                    "this refresh token was already used; the session has been revoked",
                    reason=Reason.REFRESH_TOKEN_REUSED,
                )
            new_token, new_hash = new_refresh_token()
            grace_retry = verdict is RefreshVerdict.GRACE_RETRY
            rotated = await self._store.rotate(
                old_hash=old_hash,
                session_id=record.session_id,
                new_hash=new_hash,
                expires_ms=now_ms + self._cfg.refresh_ttl_seconds * 1000,
                now_ms=now_ms,
                retire_unseen_at_ms=now_ms - grace_ms - 1 if grace_retry else None,
                unseen_generation=record.generation + 1,
            )
            if rotated:
                return record.session_id, self._tokens(record.user_id, record.session_id, new_token)
        raise Unavailable("the session is being refreshed concurrently; retry")

    @staticmethod
    def _refuse(verdict: RefreshVerdict) -> None:
        if verdict is RefreshVerdict.SESSION_REVOKED:
            raise Unauthenticated("this session has been signed out", reason=Reason.SESSION_REVOKED)
        if verdict is RefreshVerdict.EXPIRED:
            raise Unauthenticated(
                "the refresh token has expired", reason=Reason.REFRESH_TOKEN_INVALID
            )

    async def revoke(self, user_id: int, session_id: str, reason: str) -> None:
        """End one of the caller's sessions; SESSION_NOT_FOUND when it is not theirs."""
        session = await self._store.session(session_id)
        if session is None or session.user_id != user_id or session.revoked_at_ms is not None:
            raise NotFound("no such session", reason=Reason.SESSION_NOT_FOUND)
        await self._end_session(user_id, session_id, reason, self._now_ms())

    async def _end_session(self, user_id: int, session_id: str, reason: str, now_ms: int) -> None:
        """Revoke in the database (the truth), then tell every service's fast path and
        every gateway holding the session's sockets (``on_revoke``)."""
        await self._store.revoke_session(session_id, reason, now_ms)
        if self._on_revoke is not None:
            await self._on_revoke(user_id, session_id)

    async def sessions(self, user_id: int, after_id: str, limit: int) -> list[SessionRecord]:
        return await self._store.sessions_of(user_id, after_id=after_id, limit=limit)

    async def user(self, user_id: int) -> UserRecord:
        user = await self._store.user_by_id(user_id)
        if user is None:
            raise NotFound("no such user", reason=Reason.USER_NOT_FOUND)
        return user

    async def users(self, user_ids: Sequence[int]) -> list[UserRecord]:
        return await self._store.users_by_ids(user_ids)

    async def lookup(self, email: str) -> UserRecord:
        key = accounts.lookup_key(email)
        user = await self._store.user_by_email(key) if key is not None else None
        if user is None:
            raise NotFound("no user has this email", reason=Reason.USER_NOT_FOUND)
        return user

    async def revoked_since(self, since_ms: int) -> list[str]:
        """Sessions ended since ``since_ms``: what the shared revoked list is rebuilt from."""
        return await self._store.revoked_since(since_ms)

    def now_ms(self) -> int:
        return self._now_ms()

    async def session_revoked_at(self, session_id: str) -> int | None:
        """When the session ended (ms), 0 when it never existed, None while it is live."""
        session = await self._store.session(session_id)
        if session is None:
            return 0
        return session.revoked_at_ms

    def jwks(self) -> list[dict[str, str]]:
        return [public_jwk(k.kid, k.private_key.public_key()) for k in self._keys]


def _hash_of(user: UserRecord | None) -> str | None:
    return user.password_hash if user is not None else None
