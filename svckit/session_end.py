"""Telling every gateway pod that a session ended, so its WebSockets close at once (4001).

The auth service owns revocation, so it announces every session end itself — logout,
session delete, refresh-token reuse, over REST or straight over gRPC: one ``SessionEnded``
delivery item to each pod the connection registry lists for the user, on the pods' own
delivery queues. The announcement is best effort: the revocation in the auth database is
the truth, the revoked-session list refuses the tokens, and each gateway's periodic
session re-check closes a socket whose announcement was lost.
"""

from __future__ import annotations

import asyncio
import logging

from minitg.delivery.v1 import delivery_pb2

from svckit.ports import BusError, MessageBus
from svckit.reasons import Reason
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.session_end")

ANNOUNCE_TIMEOUT_SECONDS = 3.0  # a hung registry or broker must not hold a Logout longer


def session_ended_batch(session_id: str) -> bytes:
    """The delivery batch that makes a gateway close ``session_id``'s sockets."""
    item = delivery_pb2.DeliveryItem(
        session_ended=delivery_pb2.SessionEnded(
            session_id=session_id, reason=Reason.SESSION_REVOKED
        )
    )
    return delivery_pb2.DeliveryBatch(items=[item]).SerializeToString()


async def announce_session_end(
    bus: MessageBus, registry: ConnectionRegistry, user_id: int, session_id: str
) -> None:
    """Tell every pod holding a connection of ``user_id`` to close ``session_id`` (4001)."""
    body = session_ended_batch(session_id)
    for pod in await registry.pods_of([user_id]):
        try:
            await bus.publish(pod, body)
        except BusError:
            log.warning("could not tell pod %s that session %s ended", pod, session_id)


class SessionEndAnnouncer:
    """Announces session ends; a failure is a logged warning, never the caller's error."""

    def __init__(
        self,
        bus: MessageBus,
        registry: ConnectionRegistry,
        timeout: float = ANNOUNCE_TIMEOUT_SECONDS,
    ) -> None:
        self._bus, self._registry, self._timeout = bus, registry, timeout

    async def announce(self, user_id: int, session_id: str) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await announce_session_end(self._bus, self._registry, user_id, session_id)
        except Exception as exc:  # registry or broker down: the periodic re-check closes it
            log.warning("could not announce the end of session %s: %r", session_id, exc)
