"""tgclient's MinitgClient, instrumented: every applied message is timed and deduplicated.

The protocol logic (Hello, pts rule, held updates, GetDifference catch-up, request ids) is
tgclient's own; this subclass only (1) shares one aiohttp session per worker, (2) replaces
the per-connection 200 ms ack task with one sweep per worker (10,000 sleeping tasks would
cost the generator more than the acks), and (3) records what it receives in a Recorder.
Message texts carry the sender's ``time.time()``: every process runs on this one machine,
so the clocks agree.
"""

from __future__ import annotations

import contextlib
import time
from array import array
from dataclasses import dataclass, field

import aiohttp
from minitg.chat.v1 import updates_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2

from tgclient import MinitgClient
from tgclient.errors import ConnectionClosed


@dataclass
class Recorder:
    """What one worker's devices received (merged across workers by the parent)."""

    delivered: int = 0
    duplicated: int = 0  # the same message_id applied twice on one device
    redelivered: int = 0  # pushed again on the wire, filtered by the pts rule (fine)
    other_updates: int = 0
    own_messages: int = 0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    # message_id -> [deliveries seen, latest receive time]
    per_message: dict[int, list[float]] = field(default_factory=dict)
    # unix second of receipt -> [deliveries, worst latency ms]: shows stalls over time
    timeline: dict[int, list[float]] = field(default_factory=dict)

    def received(self, message_id: int, text: str) -> None:
        now = time.time()
        self.delivered += 1
        with contextlib.suppress(ValueError):
            latency = (now - float(text)) * 1000.0
            self.latencies_ms.append(latency)
            second = self.timeline.setdefault(int(now), [0.0, 0.0])
            second[0] += 1
            second[1] = max(second[1], latency)
        entry = self.per_message.get(message_id)
        if entry is None:
            self.per_message[message_id] = [1.0, now]
        else:
            entry[0] += 1
            entry[1] = max(entry[1], now)


class LoadClient(MinitgClient):
    """One device of the generator; see the module docstring for what differs."""

    def __init__(
        self,
        url: str,
        token: str,
        recorder: Recorder,
        session: aiohttp.ClientSession,
        *,
        pts: int | None = None,
        to_ack: set[LoadClient] | None = None,
    ) -> None:
        super().__init__(url, token, pts=pts, ack_interval=0)
        self._session = session
        self.recorder = recorder
        self.seen: set[int] = set()
        # the worker's set of clients whose pts may have moved since their last ack: its
        # sweep visits those instead of every client (10 % of a worker's time at 1,000 msg/s)
        self._to_ack = to_ack if to_ack is not None else set()
        self._to_ack.add(self)  # the Hello's pts is acked too, as tgclient does

    async def _ack_loop(self) -> None:
        """Acks are sent by the worker's sweep (``ack_frame``), not by a task per client."""

    def _offer(self, update: updates_pb2.Update) -> None:
        if update.pts and update.pts <= (self.pts or 0):
            self.recorder.redelivered += 1
        self._to_ack.add(self)
        super()._offer(update)

    def _apply(self, update: updates_pb2.Update) -> None:
        self._to_ack.add(self)  # catch-up applies without an _offer
        if update.WhichOneof("update") != "new_message":
            self.recorder.other_updates += 1
            return
        message = update.new_message.message
        self._delivered[message.chat_id] = max(self._delivered.get(message.chat_id, 0), message.seq)
        if self.hello is not None and message.sender_user_id == self.hello.user_id:
            self.recorder.own_messages += 1  # our own send, fetched by a gap's catch-up
            return
        if message.id in self.seen:
            self.recorder.duplicated += 1
            return
        self.seen.add(message.id)
        self.recorder.received(message.id, message.body.text)

    def ack_frame(self) -> bytes | None:
        """The pending delivered-ack (as tgclient's ack loop builds it), or None."""
        pts = self.pts or 0
        if pts <= self._acked_pts or self.closed:
            return None
        chats = [
            messages_pb2.ChatReceived(chat_id=c, max_seq=s) for c, s in self._delivered.items()
        ]
        self._delivered.clear()
        self._acked_pts = pts
        ack = messages_pb2.AckUpdates(max_pts=pts, chats=chats[:100])
        return bytes(frames_pb2.ClientFrame(request_id=0, ack_updates=ack).SerializeToString())

    async def send_raw(self, data: bytes) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_bytes(data)

    async def close(self) -> None:
        """Close the socket; the shared session stays open (the worker owns it)."""
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        self._fail_pending(ConnectionClosed(1000, "closed by the generator"))
