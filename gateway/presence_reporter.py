"""Batches this pod's connection events into PresenceInternalService.ReportConnections calls.

Presence is ephemeral: if the presence service is unreachable the batch is dropped after
one retry and logged; the registry TTL and the next heartbeat repair the picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc
from minitg.presence.v1 import presence_internal_service_pb2, presence_pb2

from gateway.clients import ServiceClients
from gateway.ws_hub import Connection
from svckit.authn import service_metadata

log = logging.getLogger("minitg.gateway.presence")

MAX_EVENTS_PER_CALL = 10_000


class PresenceReporter:
    """Collects CONNECTED / HEARTBEAT / DISCONNECTED events and flushes them in batches."""

    def __init__(self, clients: ServiceClients, pod_id: str, internal_token: str) -> None:
        self._clients, self._pod_id = clients, pod_id
        self._metadata = service_metadata(internal_token)
        self._events: list[presence_pb2.ConnectionEvent] = []
        self._wake = asyncio.Event()

    def connection_changed(self, conn: Connection, up: bool) -> None:
        kind = (
            presence_pb2.CONNECTION_EVENT_KIND_CONNECTED
            if up
            else presence_pb2.CONNECTION_EVENT_KIND_DISCONNECTED
        )
        self._add(conn, kind)

    def heartbeat(self, conns: list[Connection]) -> None:
        for conn in conns:
            self._add(conn, presence_pb2.CONNECTION_EVENT_KIND_HEARTBEAT)

    def _add(self, conn: Connection, kind: int) -> None:
        self._events.append(
            presence_pb2.ConnectionEvent(
                user_id=conn.user_id,
                session_id=conn.session_id,
                kind=kind,  # type: ignore[arg-type]
                at_ms=int(time.time() * 1000),
            )
        )
        self._wake.set()

    async def run(self, interval: float = 0.25) -> None:
        """Flush at most every ``interval`` seconds while events arrive."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._events:
            chunk = self._events[:MAX_EVENTS_PER_CALL]
            del self._events[:MAX_EVENTS_PER_CALL]
            request = presence_internal_service_pb2.ReportConnectionsRequest(
                pod_id=self._pod_id, events=chunk
            )
            for attempt in range(2):
                try:
                    await self._clients.presence_internal.ReportConnections(
                        request, metadata=self._metadata
                    )
                    break
                except grpc.aio.AioRpcError as exc:
                    if attempt == 1 or exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                        log.warning("dropping %d presence events: %s", len(chunk), exc.code().name)
                        break
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.sleep(0.5)
