"""Puts this pod's users back in the connection registry when Redis forgot them.

Redis keeps nothing across a restart or a flush, and the registry (``svckit.registry``)
lives only there: without this, a pod's users stayed unknown until the heartbeat sweep
refreshed each of them (up to one heartbeat interval, 30 s), and fan-out skipped them as
offline meanwhile. Every ``REBIRTH_CHECK_SECONDS`` the pod reads the registry's epoch (one
GET); when it differs from the one the pod last registered under — a restart, a flush,
the pod's first check, or a check that failed (Redis unreachable: entries may have expired
meanwhile) — the pod re-registers every user it holds at once (a pipeline per 1,000), and
heartbeats every connection to presence, whose state lived in the same Redis. Readers
treat the registry as in doubt for ``REBUILD_SECONDS`` after the new epoch was created,
which covers this check's delay.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.presence_reporter import PresenceReporter
from gateway.ws_hub import Hub
from svckit.registry import REBIRTH_CHECK_SECONDS, ConnectionRegistry

log = logging.getLogger("minitg.gateway.registry")

WARN_EVERY_SECONDS = 10.0


class RegistryWatch:
    """Runs ``check`` every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        hub: Hub,
        registry: ConnectionRegistry,
        reporter: PresenceReporter,
        interval: float = REBIRTH_CHECK_SECONDS,
    ) -> None:
        self._hub, self._registry, self._reporter = hub, registry, reporter
        self._interval = interval
        self._epoch: str | None = None  # the epoch this pod's users are registered under
        self._checked = False
        self._warned = float("-inf")

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:
                self._epoch = None  # re-register once the registry answers again
                now = time.monotonic()
                if now - self._warned >= WARN_EVERY_SECONDS:
                    self._warned = now
                    log.warning("connection registry unreachable (%s); will re-register", exc)
            await asyncio.sleep(self._interval)

    async def check(self) -> bool:
        """Re-register this pod's users if the registry's epoch changed; return whether."""
        epoch = await self._registry.epoch()
        if epoch == self._epoch:
            return False
        conns = [c for c in self._hub.connections() if not c.closing]
        users = list(dict.fromkeys(c.user_id for c in conns))
        await self._registry.refresh(users, self._hub.pod_id)
        if self._checked:
            log.warning(
                "connection registry was reset (epoch %s): re-registered %d users of %d "
                "connections", epoch, len(users), len(conns),
            )  # fmt: skip
            self._reporter.heartbeat(conns)
        self._epoch, self._checked = epoch, True
        return True
