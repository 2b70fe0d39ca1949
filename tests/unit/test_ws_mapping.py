"""The client protocol v1 is its own contract: frames carry only minitg.gateway.v1
payloads, which line up with the service messages they are mapped to, and the gateway's
mapping keeps what the client set (an anchor of 0, an absent body, an empty chunk)."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor
from minitg.chat.v1 import chat_service_pb2, updates_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2
from minitg.presence.v1 import presence_internal_service_pb2, presence_pb2, presence_service_pb2

from gateway import ws_mapping
from gateway.relays import AckRelay
from svckit.authn import Principal

# Each client message and the service message the gateway maps it to (or from).
PAIRS = [
    (messages_pb2.SendMessage, chat_service_pb2.SendMessageRequest),
    (messages_pb2.SendMessageResult, chat_service_pb2.SendMessageResponse),
    (messages_pb2.AckUpdates, presence_service_pb2.AckUpdatesRequest),
    (messages_pb2.ChatReceived, presence_pb2.ChatDelivery),
    (messages_pb2.SetTyping, presence_service_pb2.SetTypingRequest),
    (messages_pb2.ReadHistory, chat_service_pb2.ReadHistoryRequest),
    (messages_pb2.ReadHistoryResult, chat_service_pb2.ReadHistoryResponse),
    (messages_pb2.GetDifference, chat_service_pb2.GetDifferenceRequest),
    (messages_pb2.GetDifferenceResult, chat_service_pb2.GetDifferenceResponse),
    (messages_pb2.GetStateResult, chat_service_pb2.GetStateResponse),
    (messages_pb2.GetHistory, chat_service_pb2.GetHistoryRequest),
    (messages_pb2.GetHistoryResult, chat_service_pb2.GetHistoryResponse),
    (messages_pb2.EditMessage, chat_service_pb2.EditMessageRequest),
    (messages_pb2.EditMessageResult, chat_service_pb2.EditMessageResponse),
    (messages_pb2.DeleteMessages, chat_service_pb2.DeleteMessagesRequest),
    (messages_pb2.DeleteMessagesResult, chat_service_pb2.DeleteMessagesResponse),
]


def _payload_types(descriptor: Descriptor, oneof: str) -> dict[str, str]:
    return {f.name: f.message_type.full_name for f in descriptor.oneofs_by_name[oneof].fields}


def test_frames_carry_only_gateway_payloads() -> None:
    """Every ClientFrame payload and Result response is a minitg.gateway.v1 message."""
    payloads = _payload_types(frames_pb2.ClientFrame.DESCRIPTOR, "payload")
    payloads |= _payload_types(frames_pb2.Result.DESCRIPTOR, "response")
    foreign = {name: t for name, t in payloads.items() if not t.startswith("minitg.gateway.v1.")}
    assert {} == foreign


def test_no_client_message_has_a_session_id() -> None:
    """No client payload carries a session_id: the connection is the device."""
    fields = {
        f"{m.name}.{f.name}"
        for m in messages_pb2.DESCRIPTOR.message_types_by_name.values()
        for f in m.fields
    }
    assert [] == [f for f in fields if f.endswith(".session_id")]


@pytest.mark.parametrize(("client", "service"), PAIRS, ids=lambda c: c.DESCRIPTOR.name)
def test_client_fields_match_the_service_fields(client: type, service: type) -> None:
    """Each client field has the service field's name, number and wire type, so a
    service's INVALID_FIELD path (metadata field) is the client's own path and an ack can
    be relayed as its encoding."""
    theirs = {f.name: (f.number, f.type) for f in service.DESCRIPTOR.fields}
    ours = {f.name: (f.number, f.type) for f in client.DESCRIPTOR.fields}
    assert ours == {name: theirs.get(name) for name in ours}


def test_history_anchor_of_zero_is_kept() -> None:
    """after_seq 0 (read from the start) is an anchor, not an unset field."""
    request = ws_mapping.get_history_request(messages_pb2.GetHistory(chat_id=3, after_seq=0))
    assert ("after_seq", 0) == (request.WhichOneof("anchor"), request.after_seq)


def test_edit_without_body_stays_without_body() -> None:
    """An edit without a body reaches the service without one (INVALID_FIELD body)."""
    request = ws_mapping.edit_message_request(messages_pb2.EditMessage(chat_id=3, message_id=4))
    assert not request.HasField("body")


def test_difference_chunks_keep_their_shape() -> None:
    """An empty chunk is still a get_difference result; only the final one has a state."""
    empty = ws_mapping.get_difference_result(7, chat_service_pb2.GetDifferenceResponse())
    final = ws_mapping.get_difference_result(
        7,
        chat_service_pb2.GetDifferenceResponse(
            status=chat_service_pb2.DIFFERENCE_STATUS_SLICE,
            state=updates_pb2.State(pts=9),
            intermediate_pts=8,
        ),
    )
    assert ("get_difference", False) == (
        empty.WhichOneof("response"),
        empty.get_difference.HasField("state"),
    )
    assert (messages_pb2.DIFFERENCE_STATUS_SLICE, 9, 8) == (
        final.get_difference.status,
        final.get_difference.state.pts,
        final.get_difference.intermediate_pts,
    )


class _Presence:
    """Stands in for the presence service's stub: records the RelayAcks requests."""

    def __init__(self) -> None:
        self.calls: list[presence_internal_service_pb2.RelayAcksRequest] = []

    async def RelayAcks(
        self, request: presence_internal_service_pb2.RelayAcksRequest, **_: object
    ) -> presence_internal_service_pb2.RelayAcksResponse:
        self.calls.append(request)
        results = [presence_internal_service_pb2.RelayAckResult() for _ in request.items]
        return presence_internal_service_pb2.RelayAcksResponse(results=results)


async def test_relayed_ack_is_the_clients_ack_for_the_connections_device() -> None:
    """The relayed ack carries the client's max_pts and chats for the connection's
    session; a session_id smuggled into the frame as an unknown field is dropped."""
    smuggled = messages_pb2.AckUpdates.FromString(
        b"\x0a\x05other"
        + messages_pb2.AckUpdates(
            max_pts=5, chats=[messages_pb2.ChatReceived(chat_id=7, max_seq=3)]
        ).SerializeToString()
    )
    presence = _Presence()
    relay = AckRelay(presence, "secret", max_items=10, max_in_flight=1)  # type: ignore[arg-type]
    await relay.ack(Principal(user_id=1, session_id="mine", token="t"), smuggled)
    await relay.close()
    (item,) = presence.calls[0].items
    assert ("mine", "", 5, [(7, 3)]) == (
        item.session_id,
        item.ack.session_id,
        item.ack.max_pts,
        [(c.chat_id, c.max_seq) for c in item.ack.chats],
    )
