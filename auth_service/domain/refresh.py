"""Refresh-token rotation and reuse detection, as pure decisions.

A refresh token is opaque (256 random bits, base64url); only its SHA-256 is stored. Each
use rotates it: the presented token is marked rotated and a successor is issued. Presenting
a token that was already rotated means two parties hold the family — the thief or the
owner is replaying it — so the whole session is revoked. One exception, the grace window:
a client whose refresh response was lost in transit retries with the same token within
``grace_ms``; that retry gets a fresh successor (and the unseen one is retired) instead of
killing the session. The retry is honoured only while the token's direct successor is
still the session's newest generation: once that successor has been used (or a retry
already replaced it), the client provably holds a later token, so an ancestor showing up
again is theft, however soon. Hence a retry succeeds at most once.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import secrets
from dataclasses import dataclass


class RefreshVerdict(enum.Enum):
    """What to do with a presented refresh token."""

    ROTATE = "rotate"  # valid: issue a successor
    GRACE_RETRY = "grace_retry"  # rotated moments ago: a retry of a lost response
    REUSED = "reused"  # rotated earlier: theft, revoke the session
    EXPIRED = "expired"
    SESSION_REVOKED = "session_revoked"


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """A stored refresh token (by hash) and its session's state."""

    session_id: str
    user_id: int
    generation: int
    expires_at_ms: int
    rotated_at_ms: int | None
    session_revoked: bool
    newest_generation: int  # the session's latest generation (== generation while unrotated)


def judge(record: RefreshRecord, now_ms: int, grace_ms: int) -> RefreshVerdict:
    """Decide what a presentation of ``record``'s token at ``now_ms`` means."""
    if record.session_revoked:
        return RefreshVerdict.SESSION_REVOKED
    if record.rotated_at_ms is not None:
        in_window = now_ms - record.rotated_at_ms <= grace_ms
        successor_unused = record.newest_generation == record.generation + 1
        if in_window and successor_unused:
            return RefreshVerdict.GRACE_RETRY
        return RefreshVerdict.REUSED
    if now_ms >= record.expires_at_ms:
        return RefreshVerdict.EXPIRED
    return RefreshVerdict.ROTATE


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh token and the hash we store for it."""
    token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    """SHA-256 of the token (unsalted is fine: 256 random bits cannot be guessed)."""
    return hashlib.sha256(token.encode("utf-8", errors="replace")).digest()


def new_session_id() -> str:
    """An opaque, unguessable session id."""
    return secrets.token_urlsafe(16)
