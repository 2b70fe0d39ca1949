"""Online status: applies gateway reports, expires silent connections, publishes changes.

State lives in hot state (shared by every presence replica); timers live in this process:
the replica that last touched a user watches for the user's connections to lapse and for
the user's debounce window to end. After a restart, the next heartbeat of each live
connection (at most one heartbeat interval later) puts the user back under watch; a pod
that dies inside that gap leaves its users "online" in GetPresence until their TTL, with
no last-seen written and no push. Two replicas touching one user at the same moment may
lose one update (a read-modify-write per user); the next heartbeat repairs it.

Last-seen is persisted as soon as a user goes offline; only the push to peers waits for
the debounce window (``MINITG_PRESENCE_DEBOUNCE_SECONDS``), at whose end the user's state
is compared with what peers were last told (``domain.presence.to_publish``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from presence_service.adapters.chats import ChatDirectory
from presence_service.adapters.fanout import DeliveryFanout
from presence_service.adapters.hot import ConnectionStore
from presence_service.adapters.store import PresenceStore
from presence_service.domain import presence
from presence_service.domain.events import PresenceEvent, Push
from presence_service.domain.schedule import DueSet
from svckit.config import MessagingConfig
from svckit.errors import DomainError, Unavailable
from svckit.ports import StorageError

log = logging.getLogger("minitg.presence")

OfflineHook = Callable[[Sequence[int]], Awaitable[None]]
_MAX_SLEEP = 1.0


class PresenceTracker:
    """ReportConnections, GetPresence and the timers behind them."""

    def __init__(
        self,
        conns: ConnectionStore,
        store: PresenceStore,
        chats: ChatDirectory,
        fanout: DeliveryFanout,
        cfg: MessagingConfig,
        on_offline: OfflineHook,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conns, self._store, self._chats, self._fanout = conns, store, chats, fanout
        self._on_offline, self._clock = on_offline, clock
        self._ttl_ms = round(cfg.registry_ttl_seconds * 1000)
        self._window_ms = round(cfg.presence_debounce_seconds * 1000)
        self._lapses: DueSet[int] = DueSet()  # user -> when their last connection lapses
        self._decisions: DueSet[int] = DueSet()  # user -> end of their debounce window
        self._lock = asyncio.Lock()  # one read-modify-write of user states at a time
        self._wake = asyncio.Event()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def report(self, pod_id: str, events: Sequence[presence.ConnectionEvent]) -> None:
        """Apply one pod's batch: one hot-state read and write, one SQL transaction."""
        async with self._lock:
            now = self._now_ms()
            users = list(dict.fromkeys(e.user_id for e in events))
            state = await self._conns.load(users)
            applied = presence.apply_events(state, pod_id, events, now, self._ttl_ms)
            await self._conns.save(applied.users)
        await self._settle(applied, now)

    async def presence_of(self, user_ids: Sequence[int]) -> list[PresenceEvent]:
        """The presence of each user, in order (offline with last-seen 0 when unknown)."""
        now = self._now_ms()
        state = await self._conns.load(list(user_ids))
        online = {u: presence.is_online(state[u], now) for u in user_ids}
        seen = await self._store.last_seen([u for u in user_ids if not online[u]])
        return [PresenceEvent(u, online[u], 0 if online[u] else seen.get(u, 0)) for u in user_ids]

    async def _settle(self, applied: presence.Applied, now: int) -> None:
        """Persist last-seen, (re)arm the timers and clear the typing of users gone."""
        offline = {t.user_id: t.at_ms for t in applied.transitions if not t.online}
        try:
            await self._store.record_last_seen(offline)
        except StorageError as exc:
            raise Unavailable("last-seen times could not be stored; retry") from exc
        for user_id, conns in applied.users.items():
            deadline = presence.offline_deadline(conns)
            if deadline is None:
                self._lapses.discard(user_id)
            else:
                self._lapses.add(user_id, deadline)
        for user_id, due in presence.debounce(
            {}, applied.transitions, now, self._window_ms
        ).items():
            self._decisions.add(user_id, due, keep_earlier=True)
        self._wake.set()
        if offline:
            try:
                await self._on_offline(sorted(offline))
            except Exception:
                log.exception("clearing typing of %d users gone offline failed", len(offline))

    async def run(self) -> None:
        """The timer loop; runs until cancelled (owned by the composition root's stack)."""
        while True:
            delay = _MAX_SLEEP
            for due in (self._lapses.next_due(), self._decisions.next_due()):
                if due is not None:
                    delay = min(delay, max(0.0, (due - self._now_ms()) / 1000))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            try:
                await self.tick()
            except Exception:
                log.exception("presence timers failed; retrying")

    async def tick(self) -> None:
        """Handle every timer that is due: lapsed connections, then debounce decisions."""
        lapsed = self._lapses.pop_due(self._now_ms())
        if lapsed:
            async with self._lock:
                now = self._now_ms()
                applied = presence.expire(await self._conns.load(lapsed), now)
                await self._conns.save(applied.users)
            await self._settle(applied, now)
        decide = self._decisions.pop_due(self._now_ms())
        if decide:
            await self._publish(decide)

    async def _publish(self, user_ids: list[int]) -> None:
        """Tell the online peers of every user whose state differs from what they were
        last told; the peers of all of them come from one batched lookup (a
        BatchListPeers call per 1,000 users of this round: 10,000 connects cost ~150-250
        calls, one or a few per timer round, where they cost 10,000 ListPeers)."""
        now = self._now_ms()
        state = await self._conns.load(user_ids)
        online = {u: presence.is_online(state[u], now) for u in user_ids}
        changed = presence.to_publish(await self._conns.published(user_ids), online)
        if not changed:
            return
        await self._conns.set_published({u: online[u] for u in changed})
        seen = await self._store.last_seen([u for u in changed if not online[u]])
        events = [PresenceEvent(u, online[u], 0 if online[u] else seen.get(u, 0)) for u in changed]
        try:
            peers = await self._chats.peers_of(changed)
        except DomainError as exc:
            log.warning(
                "BatchListPeers for %d users failed (%s); changes not pushed", len(changed), exc
            )
            return
        await self._fanout.publish([Push(e, tuple(peers.get(e.user_id, ()))) for e in events])
