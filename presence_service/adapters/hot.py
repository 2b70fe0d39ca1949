"""Presence's hot state: users' connections, what peers were last told, typing marks.

Everything here is ephemeral (the HotState port may lose it); losing it costs at most a
missed or repeated presence push until the next heartbeat rebuilds the connections.

Keys, under the presence namespace:

* ``conns:<user>``: the user's connections (JSON), kept for two TTLs after the last write
  so the expiry sweep can still read a lapsed user's last heartbeat.
* ``published:<user>``: present (``1``) while the user's peers were last told "online".
* ``typing:<chat>:<user>``: the user's last TYPING push in the chat (JSON), for the TTL.
* ``typing-chats:<user>``: expiring set of chats the user typed in, to cancel on offline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from presence_service.domain.presence import Connection, ConnKey
from presence_service.domain.typing_marks import TypingMark
from svckit.ports import HotState


def _conns_key(user_id: int) -> str:
    return f"conns:{user_id}"


def _published_key(user_id: int) -> str:
    return f"published:{user_id}"


def _encode_conns(conns: Mapping[ConnKey, Connection]) -> bytes:
    rows = [[pod, s, c.at_ms, c.expires_at_ms, int(c.open)] for (pod, s), c in conns.items()]
    return json.dumps(rows, separators=(",", ":")).encode()


def _decode_conns(raw: bytes | None) -> dict[ConnKey, Connection]:
    if not raw:
        return {}
    return {
        (str(pod), str(s)): Connection(int(at), int(exp), bool(opened))
        for pod, s, at, exp, opened in json.loads(raw)
    }


class ConnectionStore:
    """Per-user connection states and the last published online flag."""

    def __init__(self, state: HotState, keep_seconds: float) -> None:
        self._state, self._keep = state, keep_seconds

    async def load(self, user_ids: Sequence[int]) -> dict[int, dict[ConnKey, Connection]]:
        """User -> connections (empty for users with none), one round trip."""
        raws = await self._state.get_many([_conns_key(u) for u in user_ids])
        return {u: _decode_conns(raw) for u, raw in zip(user_ids, raws, strict=True)}

    async def save(self, users: Mapping[int, Mapping[ConnKey, Connection]]) -> None:
        """Store the users' new states in one pipeline; empty states are deleted."""
        keep = [(_conns_key(u), _encode_conns(c)) for u, c in users.items() if c]
        gone = [_conns_key(u) for u, c in users.items() if not c]
        await self._state.set_many(keep, ttl=self._keep)
        if gone:
            await self._state.delete(*gone)

    async def published(self, user_ids: Sequence[int]) -> dict[int, bool]:
        """User -> whether peers were last told the user is online."""
        raws = await self._state.get_many([_published_key(u) for u in user_ids])
        return {u: raw is not None for u, raw in zip(user_ids, raws, strict=True)}

    async def set_published(self, online: Mapping[int, bool]) -> None:
        await self._state.set_many([(_published_key(u), b"1") for u, on in online.items() if on])
        gone = [_published_key(u) for u, on in online.items() if not on]
        if gone:
            await self._state.delete(*gone)


def _mark_key(chat_id: int, user_id: int) -> str:
    return f"typing:{chat_id}:{user_id}"


def _index_key(user_id: int) -> str:
    return f"typing-chats:{user_id}"


class TypingMarks:
    """The last TYPING push per (chat, user), and per user the chats with one."""

    def __init__(self, state: HotState, ttl_seconds: float) -> None:
        self._state, self._ttl = state, ttl_seconds

    async def get(self, chat_id: int, user_id: int) -> TypingMark | None:
        raw = await self._state.get(_mark_key(chat_id, user_id))
        if raw is None:
            return None
        pushed_at, recipients = json.loads(raw)
        return TypingMark(int(pushed_at), tuple(int(r) for r in recipients))

    async def put(self, chat_id: int, user_id: int, mark: TypingMark) -> None:
        body = json.dumps([mark.pushed_at_ms, list(mark.recipients)], separators=(",", ":"))
        await self._state.set(_mark_key(chat_id, user_id), body.encode(), ttl=self._ttl)
        await self._state.expiring_add(_index_key(user_id), str(chat_id), self._ttl)

    async def take(self, chat_id: int, user_id: int) -> TypingMark | None:
        """Return and delete the mark (None when there is none)."""
        mark = await self.get(chat_id, user_id)
        if mark is not None:
            await self._state.delete(_mark_key(chat_id, user_id))
        await self._state.expiring_remove(_index_key(user_id), str(chat_id))
        return mark

    async def chats_of(self, user_ids: Sequence[int]) -> dict[int, list[int]]:
        """User -> chats with a live typing mark, for the given users (one round trip)."""
        sets = await self._state.expiring_members_many([_index_key(u) for u in user_ids])
        return {u: sorted(int(c) for c in chats) for u, chats in zip(user_ids, sets, strict=True)}
