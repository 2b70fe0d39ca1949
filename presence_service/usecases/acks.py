"""AckUpdates: batched watermark writes, then delivery receipts.

Acks that arrive within ``MINITG_WATERMARK_FLUSH_SECONDS`` (50 ms) of the first one form a
batch, written in one transaction; every AckUpdates call of the batch returns when that
transaction commits (or fails with UNAVAILABLE when it does not), so an OK means durable.

After the commit, each (chat, member) whose delivered seq advanced gets a
MessagesDelivered receipt, pushed to the chat's other online members, for DIRECT chats
only: in a group every member's ack would notify every other member (quadratic traffic
for a tick groups do not show), so groups get none. Receipts are hints; the chats' member
lists come from the chat directory (cached; the misses of a whole batch in one
BatchGetChatMembers call), so acks for chats the user is not in produce nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from presence_service.adapters.chats import ChatDirectory
from presence_service.adapters.fanout import DeliveryFanout
from presence_service.adapters.store import PresenceStore
from presence_service.domain.acks import AckBatch, ReceiptLog
from presence_service.domain.events import DeliveredEvent, Push
from svckit.authn import Principal
from svckit.errors import DomainError, Unavailable

log = logging.getLogger("minitg.presence.acks")


class _Pending:
    """One batch being filled, and the future its callers wait on."""

    def __init__(self) -> None:
        self.batch: AckBatch[Principal] = AckBatch()
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Mark a failure as seen even when every waiting caller was cancelled meanwhile.
        self.committed.add_done_callback(lambda f: f.cancelled() or f.exception())


class AckBatcher:
    """Collects acks, flushes them every interval, then sends the receipts."""

    def __init__(
        self,
        store: PresenceStore,
        chats: ChatDirectory,
        fanout: DeliveryFanout,
        flush_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._chats, self._fanout = store, chats, fanout
        self._flush_seconds, self._clock = flush_seconds, clock
        self._pending: _Pending | None = None
        self._first = asyncio.Event()
        self._sent = ReceiptLog()

    async def ack(self, caller: Principal, max_pts: int, chats: Sequence[tuple[int, int]]) -> None:
        """Queue one device's ack; return once the batch holding it is committed."""
        if self._pending is None:
            self._pending = _Pending()
            self._first.set()
        pending = self._pending
        pending.batch.add(caller.session_id, caller.user_id, max_pts, chats, caller)
        await asyncio.shield(pending.committed)

    async def run(self) -> None:
        """Flush a batch ``flush_seconds`` after its first ack; runs until cancelled."""
        while True:
            await self._first.wait()
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def close(self) -> None:
        """Flush what is queued (at shutdown, after the server stopped taking calls)."""
        await self.flush()

    async def flush(self) -> None:
        """Commit the current batch, wake its callers, then send its receipts."""
        pending, self._pending = self._pending, None
        self._first.clear()
        if pending is None:
            return
        try:
            await self._store.save_watermarks(pending.batch.watermarks, int(self._clock() * 1000))
        except Exception as exc:
            log.warning("writing %d watermarks failed: %s", len(pending.batch.watermarks), exc)
            pending.committed.set_exception(Unavailable("acks could not be stored; retry"))
            return
        pending.committed.set_result(None)
        try:
            await self._send_receipts(pending.batch)
        except Exception:
            log.exception("sending delivery receipts failed")

    async def _send_receipts(self, batch: AckBatch[Principal]) -> None:
        """One MessagesDelivered per advanced (direct chat, member), the chats looked up
        together (cache, then one BatchGetChatMembers for the rest)."""
        advanced = [
            (chat_id, user_id, receipt.max_seq)
            for (chat_id, user_id), receipt in batch.receipts.items()
            if self._sent.advances(chat_id, user_id, receipt.max_seq)
        ]
        if not advanced:
            return
        askers: dict[int, set[int]] = {}
        for chat_id, user_id, _ in advanced:
            askers.setdefault(chat_id, set()).add(user_id)
        try:
            chats = await self._chats.chats(askers)
        except DomainError as exc:
            log.warning("no delivery receipts for %d chats: %s", len(askers), exc)
            return
        pushes: list[Push] = []
        for chat_id, user_id, max_seq in advanced:
            chat = chats.get(chat_id)
            if chat is None or not chat.direct or user_id not in chat.member_ids:
                continue  # gone, a group, or not a member: no receipt
            self._sent.record(chat_id, user_id, max_seq)
            others = tuple(m for m in chat.member_ids if m != user_id)
            pushes.append(Push(DeliveredEvent(chat_id, max_seq, user_id), others))
        await self._fanout.publish(pushes)
