"""SetTyping: push TypingChanged to a chat's other online members, coalescing repeats.

Typing is never stored durably nor queued: only members with a live connection (in the
registry) get it. The last push per (chat, typist) is kept in hot state for the typing
TTL, which is what coalesces repeats, what a CANCEL checks before pushing, and what tells
whom to send the cancel when the typist goes offline. Clients also clear a typist's
indicator when a NewMessage from them arrives in the chat (so sending needs no call here)
and when ``expires_in_ms`` passes without a renewal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from presence_service.adapters.chats import ChatDirectory
from presence_service.adapters.fanout import DeliveryFanout
from presence_service.adapters.hot import TypingMarks
from presence_service.domain import typing_marks
from presence_service.domain.events import Push, TypingEvent
from svckit.authn import Principal


class TypingRelay:
    """Typing start/stop of users, and the stop when a typist goes offline."""

    def __init__(
        self,
        marks: TypingMarks,
        chats: ChatDirectory,
        fanout: DeliveryFanout,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._marks, self._chats, self._fanout, self._clock = marks, chats, fanout, clock
        self._ttl_ms = round(ttl_seconds * 1000)

    async def set_typing(self, caller: Principal, chat_id: int, typing: bool) -> None:
        """Start (or continue) or stop the caller's typing in a chat they belong to."""
        chat = await self._chats.chat(chat_id, caller)  # CHAT_NOT_FOUND for a non-member
        now = int(self._clock() * 1000)
        user_id = caller.user_id
        if not typing:
            await self._cancel(chat_id, user_id, now)
            return
        if not typing_marks.push_typing(await self._marks.get(chat_id, user_id), now, self._ttl_ms):
            return
        recipients = typing_marks.recipients(chat.member_ids, user_id)
        await self._marks.put(chat_id, user_id, typing_marks.TypingMark(now, recipients))
        await self._fanout.publish([Push(TypingEvent(chat_id, user_id, self._ttl_ms), recipients)])

    async def clear_for(self, user_ids: Sequence[int]) -> None:
        """Push a stop for every chat the given users (gone offline) were typing in."""
        now = int(self._clock() * 1000)
        pushes: list[Push] = []
        for user_id, chat_ids in (await self._marks.chats_of(user_ids)).items():
            for chat_id in chat_ids:
                mark = await self._marks.take(chat_id, user_id)
                if typing_marks.push_cancel(mark, now, self._ttl_ms):
                    assert mark is not None
                    pushes.append(Push(TypingEvent(chat_id, user_id, 0), mark.recipients))
        await self._fanout.publish(pushes)

    async def _cancel(self, chat_id: int, user_id: int, now: int) -> None:
        mark = await self._marks.take(chat_id, user_id)
        if typing_marks.push_cancel(mark, now, self._ttl_ms):
            assert mark is not None
            await self._fanout.publish([Push(TypingEvent(chat_id, user_id, 0), mark.recipients)])
