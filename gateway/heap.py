"""The gateway's heap and the cyclic garbage collector: freeze what lives, collect in full
only when sockets have closed.

A gateway holds about a hundred GC-tracked objects per socket (a million at 10,000
sockets) and, while its sockets stay open, makes almost no cyclic garbage: what a frame
allocates dies by reference counting (a loaded gateway's young collections found nothing,
measured with ``load/``). The collector scans those live objects anyway. Every frame
replaces its socket's last message, frame and reader coroutine with new ones, so the
young generation fills with live objects while its net count (CPython's trigger) barely
moves; the young collection that finally comes scans ~150,000 objects (80-160 ms), and
the middle generation's, every twentieth, everything promoted since (0.9 s).

So every ``freeze_seconds`` the keeper freezes what is alive (``gc.freeze``: moved out of
every generation in O(1)); young collections then see at most a second's worth of new
objects. Frozen objects still die by reference counting; only frozen *cycles* are left
alone, and in a gateway those come from closed sockets. Once the sockets closed since the
last full collection reach a quarter of those open (at least ``MIN_CLOSES_PER_FULL``), or
after ``full_seconds`` at the latest, the keeper runs one full collection over everything
(unfreeze, collect, freeze): a pause as long as a CPython full collection (0.5-0.9 s at
10,000 sockets on a loaded 2-core machine), about as often as CPython's own rule (a full
collection once the long-lived objects grew by a quarter) would run one under the same
churn, instead of that plus a young pause every 20-40 s and a middle one every few
minutes. The garbage it lets wait is bounded the same way: a quarter of the sockets.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

MIN_CLOSES_PER_FULL = 1_000  # a small pod still waits for this many closed sockets


class HeapKeeper:
    """Freezes the live heap periodically; collects in full after closes or a while."""

    def __init__(
        self,
        freeze_seconds: float,
        full_seconds: float,
        open_sockets: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._freeze_seconds, self._full_seconds, self._clock = freeze_seconds, full_seconds, clock
        self._open_sockets = open_sockets
        self._closed = 0
        self._next_full = clock() + full_seconds
        self.full_collections = 0

    def socket_closed(self) -> None:
        """Count a closed socket (its cycles are garbage the next full collection takes)."""
        self._closed += 1

    def tick(self) -> None:
        """Freeze what is alive now, or collect everything when closes or time say so."""
        enough = max(MIN_CLOSES_PER_FULL, self._open_sockets() // 4)
        if self._closed >= enough or self._clock() >= self._next_full:
            gc.unfreeze()
            gc.collect()
            self._closed, self._next_full = 0, self._clock() + self._full_seconds
            self.full_collections += 1
        gc.freeze()

    async def run(self) -> None:
        """Tick every ``freeze_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self._freeze_seconds)
            self.tick()
