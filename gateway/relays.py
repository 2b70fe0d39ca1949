"""The gateway pod's sends, acks and Hello states, coalesced into batched internal calls.

Every connection's SendMessage frames go through one ``SendRelay`` per pod: concurrent
sends of many users leave together in one RelaySends call, which the chat service commits
in one transaction (group commit; see svckit/coalesce.py for when a batch leaves). The
gateway authenticated each sender on their socket; the call carries the internal service
credential and, per item, the sender's user and session. One connection's sends still
commit in the order received: the dispatcher holds the connection's send lock until its
send is answered, so two sends of one device are never in flight together.

Delivered-acks (AckUpdates frames, one per device every few hundred milliseconds) go the
same way to the presence service as RelayAcks: one call per batch instead of one call, one
token check and one revocation lookup per ack. The Hello frames' states come from
GetStates batches the same way (a connect storm asks once per batch, not once per socket).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from minitg.chat.v1 import (
    chat_internal_service_pb2,
    chat_internal_service_pb2_grpc,
    chat_service_pb2,
    updates_pb2,
)
from minitg.gateway.v1 import messages_pb2
from minitg.presence.v1 import presence_internal_service_pb2, presence_internal_service_pb2_grpc

from svckit.authn import Principal, service_metadata
from svckit.coalesce import Coalescer
from svckit.errors import DomainError
from svckit.logs import request_id_var

log = logging.getLogger("minitg.gateway.ws")

_CODES = {code.value[0]: code for code in grpc.StatusCode}
_Item = tuple[Principal, Any, str]


def item_error(
    error: chat_internal_service_pb2.ItemError | presence_internal_service_pb2.RelayAckResult,
) -> DomainError:
    """A batch's per-item error (chat's ItemError, presence's RelayAckResult) as the
    DomainError the single call would have raised."""
    failed = DomainError(error.message, reason=error.reason, metadata=dict(error.metadata))
    failed.code = _CODES.get(error.code, grpc.StatusCode.UNKNOWN)
    return failed


def _as_sent(error: chat_internal_service_pb2.ItemError, index: int) -> DomainError:
    """Batch item ``index``'s error as the client's own SendMessage frame would have failed:
    field paths relative to that frame (``body.text``), not to the internal batch
    (``items[3].send.body.text``), in metadata ``field`` and in the message."""
    failed = item_error(error)
    prefix = f"items[{index}].send."
    field = failed.metadata.get("field", "")
    if field.startswith(prefix):
        failed.metadata["field"] = field[len(prefix) :]
        failed.message = failed.message.replace(prefix, "")
        failed.args = (failed.message,)
    return failed


class SendRelay:
    """Coalesces this pod's sends into RelaySends calls (see the module docstring)."""

    def __init__(
        self,
        chat: chat_internal_service_pb2_grpc.ChatInternalServiceAsyncStub,
        internal_token: str,
        *,
        max_items: int,
        max_in_flight: int,
    ) -> None:
        self._chat, self._metadata = chat, service_metadata(internal_token)
        self._batches: Coalescer[_Item, chat_service_pb2.SendMessageResponse] = Coalescer(
            self._call, max_items=max_items, max_in_flight=max_in_flight, name="sends"
        )

    async def send(
        self, sender: Principal, request: messages_pb2.SendMessage
    ) -> chat_service_pb2.SendMessageResponse:
        """Send the client's ``request`` as ``sender``; raise the item's error as a
        DomainError."""
        return await self._batches.submit((sender, request, request_id_var.get()))

    async def _call(
        self, items: list[_Item]
    ) -> list[chat_service_pb2.SendMessageResponse | BaseException]:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("relaying %d sends: %s", len(items), " ".join(rid for _, _, rid in items))
        # Each client SendMessage is built into its item field by field (items.add and a
        # dict: one copy of the body, measured cheaper than building RelayedSend objects).
        request = chat_internal_service_pb2.RelaySendsRequest()
        add = request.items.add
        for sender, send, _ in items:
            body = {"chat_id": send.chat_id, "client_msg_id": send.client_msg_id, "body": send.body}
            add(user_id=sender.user_id, session_id=sender.session_id, send=body)
        reply = await self._chat.RelaySends(request, metadata=self._metadata)
        return [
            r.response if r.WhichOneof("outcome") == "response" else _as_sent(r.error, index)
            for index, r in enumerate(reply.results)
        ]

    async def close(self) -> None:
        await self._batches.close()


class AckRelay:
    """Coalesces this pod's delivered-acks into RelayAcks calls (see the module docstring)."""

    def __init__(
        self,
        presence: presence_internal_service_pb2_grpc.PresenceInternalServiceAsyncStub,
        internal_token: str,
        *,
        max_items: int,
        max_in_flight: int,
    ) -> None:
        self._presence, self._metadata = presence, service_metadata(internal_token)
        self._batches: Coalescer[tuple[Principal, Any], None] = Coalescer(
            self._call, max_items=max_items, max_in_flight=max_in_flight, name="acks"
        )

    async def ack(self, device: Principal, request: messages_pb2.AckUpdates) -> None:
        """Record ``device``'s ack; raise its refusal (INVALID_FIELD) as a DomainError."""
        await self._batches.submit((device, request))

    def post(self, device: Principal, request: messages_pb2.AckUpdates) -> None:
        """Record an ack nobody waits for (request id 0): no reply; a failed call is logged,
        a refused (malformed) ack dropped. Acks are cumulative, so the device's next ack
        covers a lost one."""
        self._batches.post((device, request))

    async def _call(self, items: list[tuple[Principal, Any]]) -> list[BaseException | None]:
        request = presence_internal_service_pb2.RelayAcksRequest()
        add = request.items.add
        for device, ack in items:
            # The client's AckUpdates has AckUpdatesRequest's field numbers without its
            # session_id (the device is the connection's): re-encoding it costs ~2 us
            # whatever its chats, half a field-by-field build with chats. Unknown fields
            # are dropped first, so a client cannot smuggle in a session_id.
            ack.DiscardUnknownFields()
            add(user_id=device.user_id, session_id=device.session_id).ack.MergeFromString(
                ack.SerializeToString()
            )
        reply = await self._presence.RelayAcks(request, metadata=self._metadata)
        return [item_error(r) if r.reason else None for r in reply.results]

    async def close(self) -> None:
        await self._batches.close()


class StateReader:
    """The update-log states for Hello frames, coalesced into GetStates calls: a burst of
    connects costs a few calls to the chat service instead of one GetState each."""

    def __init__(
        self,
        chat: chat_internal_service_pb2_grpc.ChatInternalServiceAsyncStub,
        internal_token: str,
        *,
        max_items: int = 1000,
        max_in_flight: int = 2,
    ) -> None:
        self._chat, self._metadata = chat, service_metadata(internal_token)
        self._batches: Coalescer[int, updates_pb2.State] = Coalescer(
            self._call, max_items=max_items, max_in_flight=max_in_flight, name="states"
        )

    async def state_of(self, user_id: int) -> updates_pb2.State:
        """What GetState would answer ``user_id`` (raises the call's error when it failed)."""
        return await self._batches.submit(user_id)

    async def _call(self, user_ids: list[int]) -> list[updates_pb2.State | BaseException]:
        request = chat_internal_service_pb2.GetStatesRequest(user_ids=user_ids)
        reply = await self._chat.GetStates(request, metadata=self._metadata)
        return list(reply.states)

    async def close(self) -> None:
        await self._batches.close()
