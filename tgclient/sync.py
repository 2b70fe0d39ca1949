"""Keeping a device in step with its update log: the pts rule, gaps, catch-up, state.

The rules are docs/PROTOCOL.md section 4 (``tgclient.pts.PtsState`` is the rule itself,
without I/O): updates are applied in pts order, a gap is given ``gap_grace`` to close by
itself before GetDifference fills it, our own replies advance pts like the updates they
stand for, and a device that connects without knowing its pts learns it from Hello or,
when Hello has none, from GetState.
"""

from __future__ import annotations

import asyncio
from typing import Any

from minitg.chat.v1 import updates_pb2
from minitg.gateway.v1 import messages_pb2

from tgclient.calls import Calls
from tgclient.errors import ConnectionClosed, RequestFailed
from tgclient.pts import PtsState

# How long a gap may stay open before GetDifference is called (docs/PROTOCOL.md section 4).
GAP_GRACE_SECONDS = 0.5
STATE_ATTEMPTS = 5  # GetState tries when Hello came without state (backing off 0.2-1.6 s)


class UpdateSync(Calls):
    """The update half of the client; ``MinitgClient`` sets these attributes up."""

    _state: PtsState
    _known_pts: bool
    _early: list[updates_pb2.Update] | None  # updates that came before our pts was known
    _gap_seen: bool  # a gap was found that no GetDifference has covered yet
    _gap_grace: float
    _catching_up: asyncio.Task[None] | None
    _delivered: dict[int, int]  # chat -> max seq received, for the next ack
    updates: asyncio.Queue[updates_pb2.Update]
    too_long: bool

    @property
    def pts(self) -> int:
        """The device's position in its update log (0 before the first Hello)."""
        return self._state.pts

    async def _learn_state(self) -> None:
        """Where a fresh device stands, when Hello could not say: GetState, then the
        updates that arrived meanwhile by the pts rule."""
        for attempt in range(STATE_ATTEMPTS):
            try:
                reply = await self.get_state()
                break
            except (RequestFailed, TimeoutError):  # the same overload that kept it out of Hello
                if attempt == STATE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        self._state.pts, self._known_pts = reply.state.pts, True
        early, self._early = self._early or [], None
        for update in early:
            self._offer(update)

    def _advance(self, reply: Any) -> None:
        """A reply that carries pts/pts_count stands for our own update."""
        ready, gap = self._state.advance(getattr(reply, "pts", 0), getattr(reply, "pts_count", 0))
        self._apply_all(ready, gap)

    async def catch_up(self, limit: int = 0) -> None:
        """GetDifference from our pts until complete; applies updates in pts order."""
        while True:
            chunks = await self.get_difference(self.pts, limit)
            for chunk in chunks:
                for update in chunk.updates:
                    self._offer(update)
            final = chunks[-1]
            if final.status == messages_pb2.DIFFERENCE_STATUS_TOO_LONG:
                self.too_long = True
                self._state.reset(final.state.pts)
                return
            if final.status == messages_pb2.DIFFERENCE_STATUS_SLICE:
                self._state.pts = max(self._state.pts, final.intermediate_pts)
                continue
            self._state.pts = max(self._state.pts, final.state.pts)
            self._apply_all(self._state.release(), False)
            return

    async def next_update(self, timeout: float = 10) -> updates_pb2.Update:
        return await asyncio.wait_for(self.updates.get(), timeout)

    def _offer(self, update: updates_pb2.Update) -> None:
        """Apply by the pts rule; hold back what comes after a gap and fetch the gap."""
        if self._early is not None:
            self._early.append(update)
            return
        self._apply_all(*self._state.offer(update))

    def _apply_all(self, ready: list[updates_pb2.Update], gap: bool) -> None:
        for update in ready:
            self._apply(update)
        if not gap:
            return
        self._gap_seen = True
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.create_task(self._fill_gap())

    async def _fill_gap(self) -> None:
        """Give a gap ``gap_grace`` to close by itself (the usual gap is a peer's update
        still on its way while our own later send was already answered), then catch up;
        repeat while gaps keep appearing (one found while a GetDifference was already under
        way may lie past what that call returned) or the catch-up failed (backing off)."""
        failures = 0
        while self._gap_seen:
            self._gap_seen = False
            await asyncio.sleep(self._gap_grace * 2**failures)
            if not self._state.pending:
                continue
            try:
                await self.catch_up()
                failures = 0
            except (RequestFailed, TimeoutError):  # busy server: try again, later each time
                failures = min(failures + 1, 5)
                self._gap_seen = True
            except ConnectionClosed:
                return  # the reconnect catches up

    def _apply(self, update: updates_pb2.Update) -> None:
        if update.WhichOneof("update") == "new_message":
            message = update.new_message.message
            seen = self._delivered.get(message.chat_id, 0)
            self._delivered[message.chat_id] = max(seen, message.seq)
        self.updates.put_nowait(update)
