"""The gateway's delivery consumer: one frame per recipient device, shared + patch merged,
the excluded session skipped, and the pushes, frames and latencies counted once per item."""

from __future__ import annotations

import time

from minitg.chat.v1 import chat_pb2, updates_pb2
from minitg.delivery.v1 import delivery_pb2
from minitg.gateway.v1 import frames_pb2
from prometheus_client import REGISTRY

from gateway.delivery import DeliveryConsumer
from gateway.ws_hub import Hub
from svckit.adapters.memory_state import MemoryHotState
from svckit.ports import Delivery
from svckit.registry import ConnectionRegistry


class _Device:
    """What the consumer and the hub use of a connection: its ids and send()."""

    def __init__(self, user_id: int, session_id: str, taking: bool = True) -> None:
        self.user_id, self.session_id, self.taking = user_id, session_id, taking
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> bool:
        if self.taking:
            self.frames.append(frame)
        return self.taking

    async def close(self, code: int, message: str = "", reconnect_after_ms: int = 0) -> None:
        """Not reached here: no session is replaced."""


def _pushed() -> tuple[float, float, float]:
    """Pushes, update frames out, and delivery latency observations so far."""
    return tuple(  # type: ignore[return-value]
        REGISTRY.get_sample_value(name, labels) or 0.0
        for name, labels in (
            ("minitg_delivery_pushed_total", {}),
            ("minitg_ws_frames_total", {"direction": "out", "type": "update"}),
            ("minitg_delivery_latency_seconds_count", {}),
        )
    )


async def test_each_recipient_device_gets_its_merged_update_except_the_excluded_session() -> None:
    hub = Hub("pod-a", ConnectionRegistry(MemoryHotState(), ttl=60))
    phone, laptop, peer = _Device(1, "s-phone"), _Device(1, "s-laptop"), _Device(2, "s-peer")
    slow = _Device(2, "s-slow", taking=False)  # a socket being closed drops the frame
    for device in (phone, laptop, peer, slow):
        await hub.attach(device)  # type: ignore[arg-type]
    message = chat_pb2.Message(id=7, chat_id=3, seq=1, sender_user_id=1)
    update = updates_pb2.Update(new_message=updates_pb2.NewMessage(message=message))
    update.date_ms = int(time.time() * 1000)
    item = delivery_pb2.DeliveryItem(update=update, exclude_session_id="s-phone")
    item.recipients.add(user_id=1).patch.pts = 11
    peer_patch = item.recipients.add(user_id=2).patch
    peer_patch.pts, peer_patch.new_message.unread_count = 21, 4
    before = _pushed()
    body = delivery_pb2.DeliveryBatch(items=[item]).SerializeToString()
    await DeliveryConsumer(hub).handle(Delivery(body=body, headers={}, routing_key="pod-a"))
    assert [] == phone.frames
    after = _pushed()
    # three pushes tried, two frames out, every push's latency observed
    assert (3, 2, 3) == tuple(a - b for a, b in zip(after, before, strict=True))
    (mine,), (theirs,) = laptop.frames, peer.frames
    assert (11, 7, 0) == _seen(mine)
    assert (21, 7, 4) == _seen(theirs)


def _seen(frame: bytes) -> tuple[int, int, int]:
    update = frames_pb2.ServerFrame.FromString(frame).update
    return update.pts, update.new_message.message.id, update.new_message.unread_count
