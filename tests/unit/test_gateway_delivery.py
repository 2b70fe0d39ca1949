"""The gateway's delivery consumer: one frame per recipient device, shared + patch merged,
the excluded session skipped, and the pushes counted once per item."""

from __future__ import annotations

from minitg.chat.v1 import chat_pb2, delivery_pb2, updates_pb2
from minitg.gateway.v1 import frames_pb2
from prometheus_client import REGISTRY

from gateway.delivery import DeliveryConsumer
from gateway.ws_hub import Hub
from svckit.adapters.memory_state import MemoryHotState
from svckit.ports import Delivery
from svckit.registry import ConnectionRegistry


class _Device:
    """What the consumer and the hub use of a connection: its ids and push()."""

    def __init__(self, user_id: int, session_id: str) -> None:
        self.user_id, self.session_id = user_id, session_id
        self.frames: list[bytes] = []

    def push(self, frame: bytes, kind: str = "update") -> None:
        self.frames.append(frame)

    async def close(self, code: int, message: str = "", reconnect_after_ms: int = 0) -> None:
        """Not reached here: no session is replaced."""


def _pushed() -> float:
    return REGISTRY.get_sample_value("minitg_delivery_pushed_total") or 0.0


async def test_each_recipient_device_gets_its_merged_update_except_the_excluded_session() -> None:
    hub = Hub("pod-a", ConnectionRegistry(MemoryHotState(), ttl=60))
    phone, laptop, peer = _Device(1, "s-phone"), _Device(1, "s-laptop"), _Device(2, "s-peer")
    for device in (phone, laptop, peer):
        await hub.attach(device)  # type: ignore[arg-type]
    message = chat_pb2.Message(id=7, chat_id=3, seq=1, sender_user_id=1)
    item = delivery_pb2.DeliveryItem(
        update=updates_pb2.Update(new_message=updates_pb2.NewMessage(message=message)),
        exclude_session_id="s-phone",
    )
    item.recipients.add(user_id=1).patch.pts = 11
    peer_patch = item.recipients.add(user_id=2).patch
    peer_patch.pts, peer_patch.new_message.unread_count = 21, 4
    before = _pushed()
    body = delivery_pb2.DeliveryBatch(items=[item]).SerializeToString()
    await DeliveryConsumer(hub).handle(Delivery(body=body, headers={}, routing_key="pod-a"))
    assert [] == phone.frames
    assert 2 == _pushed() - before
    (mine,), (theirs,) = laptop.frames, peer.frames
    assert (11, 7, 0) == _seen(mine)
    assert (21, 7, 4) == _seen(theirs)


def _seen(frame: bytes) -> tuple[int, int, int]:
    update = frames_pb2.ServerFrame.FromString(frame).update
    return update.pts, update.new_message.message.id, update.new_message.unread_count
