"""The heartbeat of a gateway pod: registry refresh, presence heartbeats, token checks.

Every heartbeat interval it refreshes this pod's registry entries (so they outlive their
TTL only while the pod lives), tells presence the connections are alive, and re-checks each
connection's token: a revoked session is closed with 4001, an expired token (no RenewToken
in time) with 4003. The socket-level ping/pong that drops dead peers is aiohttp's
``heartbeat`` on each socket.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.presence_reporter import PresenceReporter
from gateway.ws_hub import CloseCode, Connection, Hub
from svckit.authn import Authenticator
from svckit.errors import Unauthenticated
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.gateway.ws")

CHECK_CONCURRENCY = 32


class Maintenance:
    """Runs ``tick`` every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        hub: Hub,
        registry: ConnectionRegistry,
        reporter: PresenceReporter,
        authenticator: Authenticator,
        interval: float,
    ) -> None:
        self._hub, self._registry, self._reporter = hub, registry, reporter
        self._authn, self._interval = authenticator, interval
        self._slots = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except Exception:
                log.exception("gateway heartbeat failed; retrying next interval")

    async def tick(self) -> None:
        conns = self._hub.connections()
        await self._registry.refresh(self._hub.user_ids(), self._hub.pod_id)
        self._reporter.heartbeat(conns)
        await asyncio.gather(*(self._check(c) for c in conns))

    async def _check(self, conn: Connection) -> None:
        async with self._slots:
            try:
                await self._authn.authenticate(conn.principal.token)
            except Unauthenticated as exc:
                code = (
                    CloseCode.CLOSE_CODE_TOKEN_EXPIRED
                    if exc.reason == "TOKEN_EXPIRED"
                    else CloseCode.CLOSE_CODE_SESSION_REVOKED
                )
                await conn.close(code, exc.message)
            except Exception:  # auth unreachable: keep the connection, check again later
                return
