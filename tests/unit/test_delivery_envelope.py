"""The delivery envelope (minitg.delivery.v1) kept the encoding it had in minitg.chat.v1."""

from minitg.delivery.v1 import delivery_pb2

# A batch with every field and every event variant set, as the code before contract v1
# (package minitg.chat.v1) encoded it: a pod running that code decodes today's bytes.
_CHAT_V1_BYTES = bytes.fromhex(
    "0a180a0622040a0210072a0a08051206080322021002320273310a0612040a0208090a041a0208040a04"
    "220210080a173a150a027378120f53455353494f4e5f5245564f4b454412037269641880d095ffbc3122"
    "460a0b7472616365706172656e74123730302d30616637363531393136636434336464383434386562"
    "323131633830333139632d623761643662373136393230333333312d3031"
)


def _every_field() -> delivery_pb2.DeliveryBatch:
    batch = delivery_pb2.DeliveryBatch(
        request_id="rid",
        sent_at_ms=1_700_000_000_000,
        trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    item = batch.items.add(exclude_session_id="s1")
    item.update.new_message.message.chat_id = 7
    patch = item.recipients.add(user_id=5).patch
    patch.pts = 3
    patch.new_message.unread_count = 2
    batch.items.add().presence_changed.presence.user_id = 9
    batch.items.add().typing_changed.chat_id = 4
    batch.items.add().messages_delivered.max_seq = 8
    batch.items.add().session_ended.session_id = "sx"
    batch.items[-1].session_ended.reason = "SESSION_REVOKED"
    return batch


def test_encoding_is_unchanged_by_the_move() -> None:
    """A DeliveryBatch encodes to the same bytes as under its former package."""
    assert _CHAT_V1_BYTES == _every_field().SerializeToString()


def test_former_bytes_decode_to_the_same_batch() -> None:
    """Bytes published by a pod on the former package decode to the same batch."""
    assert _every_field() == delivery_pb2.DeliveryBatch.FromString(_CHAT_V1_BYTES)
