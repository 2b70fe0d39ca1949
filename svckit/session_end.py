"""Telling every gateway pod that a session ended, so its WebSockets close at once (4001).

The auth service owns revocation, so it announces every session end itself — logout,
session delete, refresh-token reuse, over REST or straight over gRPC: one ``SessionEnded``
delivery item whose recipient is the user, handed to the delivery publisher
(``svckit.delivery.PodPublisher``, shared with chat and presence), which sends it to each
pod the connection registry lists for the user, on the pods' own delivery queues. The
announcement is best effort (not retried, not even while the registry is in doubt): the
revocation in the auth database is the truth, the revoked-session list refuses the tokens,
and each gateway's periodic session re-check closes a socket whose announcement was lost.
"""

from __future__ import annotations

import asyncio
import logging

from minitg.delivery.v1 import delivery_pb2

from svckit.delivery import PodPublisher
from svckit.logs import request_id_var
from svckit.ports import BusError, MessageBus
from svckit.reasons import Reason
from svckit.registry import ConnectionRegistry

log = logging.getLogger("minitg.session_end")

ANNOUNCE_TIMEOUT_SECONDS = 3.0  # a hung registry or broker must not hold a Logout longer


def session_ended_batch(user_id: int, session_id: str) -> delivery_pb2.DeliveryBatch:
    """The delivery batch that makes the pods of ``user_id`` close ``session_id``'s sockets
    (the recipient routes it; a gateway ignores recipients of a SessionEnded)."""
    item = delivery_pb2.DeliveryItem(
        session_ended=delivery_pb2.SessionEnded(
            session_id=session_id, reason=Reason.SESSION_REVOKED
        ),
        recipients=[delivery_pb2.DeliveryRecipient(user_id=user_id)],
    )
    return delivery_pb2.DeliveryBatch(items=[item], request_id=request_id_var.get())


async def announce_session_end(publisher: PodPublisher, user_id: int, session_id: str) -> None:
    """Tell every pod holding a connection of ``user_id`` to close ``session_id`` (4001)."""
    try:
        await publisher.publish([session_ended_batch(user_id, session_id)])
    except BusError:
        log.warning("could not tell the pods of user %d that session %s ended", user_id, session_id)


class SessionEndAnnouncer:
    """Announces session ends; a failure is a logged warning, never the caller's error."""

    def __init__(
        self,
        bus: MessageBus,
        registry: ConnectionRegistry,
        timeout: float = ANNOUNCE_TIMEOUT_SECONDS,
    ) -> None:
        self._publisher, self._timeout = PodPublisher(bus, registry, "auth"), timeout

    async def announce(self, user_id: int, session_id: str) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await announce_session_end(self._publisher, user_id, session_id)
        except Exception as exc:  # registry or broker down: the periodic re-check closes it
            log.warning("could not announce the end of session %s: %r", session_id, exc)
