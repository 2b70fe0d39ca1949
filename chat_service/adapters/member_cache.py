"""A short-lived cache of chat member lists in the hot-state store (chat namespace).

Used where an up-to-the-second member list is not needed for correctness: membership
pre-checks of read-only calls and the internal GetChatMembers. Writes never trust it (the
send transaction reads members under the chat's row lock). Entries live
``member_cache_seconds`` and are deleted after every membership change; losing the store
only costs database reads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from svckit.ports import HotState

log = logging.getLogger("minitg.chat.cache")
Loader = Callable[[int], Awaitable[list[int]]]


def _key(chat_id: int) -> str:
    return f"members:{chat_id}"


class MemberCache:
    """chat id -> ascending member ids, read through to ``load`` on a miss."""

    def __init__(self, state: HotState, load: Loader, ttl: float) -> None:
        self._state, self._load, self._ttl = state, load, ttl

    async def members(self, chat_id: int) -> list[int]:
        if self._ttl <= 0:
            return await self._load(chat_id)
        try:
            cached = await self._state.get(_key(chat_id))
        except Exception:
            log.warning("member cache unavailable; reading the database", exc_info=True)
            return await self._load(chat_id)
        if cached is not None:
            return [int(x) for x in cached.decode().split(",") if x]
        ids = await self._load(chat_id)
        if not ids:  # unknown chat: not cached, so a chat created next is seen at once
            return ids
        try:
            await self._state.set(_key(chat_id), ",".join(map(str, ids)).encode(), self._ttl)
        except Exception:
            log.warning("member cache unavailable; not cached", exc_info=True)
        return ids

    async def is_member(self, chat_id: int, user_id: int) -> bool:
        return user_id in await self.members(chat_id)

    async def invalidate(self, chat_id: int) -> None:
        try:
            await self._state.delete(_key(chat_id))
        except Exception:
            log.warning("member cache invalidation failed for chat %s", chat_id, exc_info=True)
