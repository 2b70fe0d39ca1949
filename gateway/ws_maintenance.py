"""The heartbeat of a gateway pod: registry refresh, presence heartbeats, token checks.

Every heartbeat interval it refreshes this pod's registry entries (so they outlive their
TTL only while the pod lives), tells presence the connections are alive, and closes
connections whose access token expired without a RenewToken (4003) — a local check.
Every session end reaches every pod at once (the auth service's SessionEnded delivery);
one whose announcement was lost (broker down) is caught by asking the auth service again
every ``recheck`` seconds per connection, spread over time, instead of on every beat.
It is also the WebSocket heartbeat: every socket gets a ping each interval, and a socket
that answered neither the previous ping nor anything else within two intervals is closed
with 4000 (HEARTBEAT_TIMEOUT). One sweep for the pod replaces a timer and a task per
socket, which cost a quarter of an idle gateway's CPU; the sweep visits a slice of the
connections at a time, so that each is visited once per interval without a burst.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from gateway.presence_reporter import PresenceReporter
from gateway.ws_hub import CloseCode, Connection, Hub
from svckit.authn import Authenticator
from svckit.errors import Unauthenticated
from svckit.reasons import Reason
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.gateway.ws")

CHECK_CONCURRENCY = 32
# The sweep is spread over the interval in slices (one a second at the default 30 s), so
# 10,000 sockets cost 333 pings, registry refreshes and heartbeats a second instead of a
# burst that stalled the pod's event loop (and Redis and presence) for up to a second.
MAX_SLICES = 30
MIN_SLICE_SECONDS = 0.5
EXPIRY_LEEWAY = 30.0  # seconds, as token verification allows


class Maintenance:
    """Runs ``tick`` every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        hub: Hub,
        registry: ConnectionRegistry,
        reporter: PresenceReporter,
        authenticator: Authenticator,
        interval: float,
        recheck: float,
    ) -> None:
        self._hub, self._registry, self._reporter = hub, registry, reporter
        self._authn, self._interval, self._recheck = authenticator, interval, recheck
        self._slots = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def run(self) -> None:
        """Every interval, every connection once, in slices spread over the interval."""
        slices = max(1, min(MAX_SLICES, int(self._interval / MIN_SLICE_SECONDS)))
        round_left: list[Connection] = []
        per_slice = 0
        loop = asyncio.get_running_loop()
        due = loop.time()
        for tick in itertools.count():
            due += self._interval / slices  # a fixed schedule: slow ticks do not stretch it
            await asyncio.sleep(max(0.0, due - loop.time()))
            # A round is ``slices`` ticks whatever the number of sockets: a pod with fewer
            # sockets than slices used to start a new round as soon as its last slice was
            # taken, visiting each socket every tick (a 1-socket pod: every second).
            if tick % slices == 0:
                round_left = self._hub.connections()
                per_slice = -(-len(round_left) // slices)  # ceiling
            chunk, round_left = round_left[:per_slice], round_left[per_slice:]
            try:
                await self.tick(chunk)
            except Exception:
                log.exception("gateway heartbeat failed; retrying next interval")

    async def tick(self, conns: list[Connection]) -> None:
        """Heartbeat ``conns``: ping, close the silent and expired, refresh their registry
        entries and presence, recheck the sessions that are due."""
        now, wall = time.monotonic(), time.time()
        conns = [c for c in conns if not c.closing]
        silent = [c for c in conns if now - max(c.last_pong, c.last_seen) > 2 * self._interval]
        for conn in silent:
            await conn.close(CloseCode.CLOSE_CODE_HEARTBEAT_TIMEOUT, "no answer to pings")
        dropped = set(silent)
        conns = [c for c in conns if c not in dropped]
        await asyncio.gather(*(_ping(c) for c in conns))
        conns = [c for c in conns if not c.closing]  # closed by its client during the pings
        users = list(dict.fromkeys(c.user_id for c in conns))
        await self._registry.refresh(users, self._hub.pod_id)
        self._reporter.heartbeat(conns)
        expired = [c for c in conns if c.token_exp and wall > c.token_exp + EXPIRY_LEEWAY]
        for conn in expired:
            await conn.close(CloseCode.CLOSE_CODE_TOKEN_EXPIRED, "access token expired")
        gone = set(expired)
        due = [c for c in conns if c not in gone and now - c.last_checked >= self._recheck]
        await asyncio.gather(*(self._check(c, now) for c in due))

    async def _check(self, conn: Connection, now: float) -> None:
        conn.last_checked = now
        async with self._slots:
            try:
                await self._authn.authenticate(conn.principal.token)
            except Unauthenticated as exc:
                code = (
                    CloseCode.CLOSE_CODE_TOKEN_EXPIRED
                    if exc.reason == Reason.TOKEN_EXPIRED
                    else CloseCode.CLOSE_CODE_SESSION_REVOKED
                )
                await conn.close(code, exc.message)
            except Exception:  # auth unreachable: keep the connection, check again later
                return


async def _ping(conn: Connection) -> None:
    if conn.closing or conn.ws.closed:
        return
    try:
        await conn.ws.ping()
    except (ConnectionError, RuntimeError):
        return
