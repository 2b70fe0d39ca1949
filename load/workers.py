"""One generator worker: its share of the devices, on its own uvloop, driven by commands.

The parent (load/pool.py) sends a command over a pipe, the worker does it and answers:
``connect`` (open sockets; with saved pts they catch up first), ``disconnect`` (close
and remember pts), ``send`` (drive the send slots open- or closed-loop), ``status``
(expected vs received deliveries, for the drain), ``receipts`` and ``stop``. Every
wait is bounded: connects, acks and the command loop itself time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from minitg.chat.v1 import chat_pb2
from minitg.gateway.v1 import messages_pb2

from load.client import LoadClient, Recorder
from load.procstat import raise_nofile
from load.scenarios import Scenario, SendSlot
from tgclient.errors import ConnectionClosed, RequestFailed

CONNECT_TIMEOUT = 30.0
MAX_LIFETIME = 3600.0  # a worker whose parent vanished exits by itself
MAX_IN_FLIGHT = 20_000  # open-loop sends awaiting acks per worker; above it sends are skipped


@dataclass
class WorkerPlan:
    """A worker's share: devices (global index -> user id, token, gateway ws url)."""

    index: int
    scenario: Scenario
    devices: dict[int, tuple[int, str, str]]
    slots: list[SendSlot]
    chat_ids: list[int]
    chats: list[list[int]]  # members (device indexes) of every chat
    source_ip: str


@dataclass
class ConnectReport:
    ok: int = 0
    failed: int = 0
    connected: list[int] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0


@dataclass
class SendReport:
    attempted: int = 0
    acked: int = 0
    failed: int = 0
    skipped: int = 0  # not offered: the worker's in-flight cap was reached (overload)
    errors: Counter[str] = field(default_factory=Counter)
    ack_ms: array[float] = field(default_factory=lambda: array("d"))
    acked_ids: dict[int, tuple[float, int]] = field(default_factory=dict)  # id -> (sent, rcpts)
    elapsed: float = 0.0


class Worker:
    def __init__(self, plan: WorkerPlan, session: aiohttp.ClientSession) -> None:
        self.plan, self.session = plan, session
        self.recorder = Recorder()
        self.clients: dict[int, LoadClient] = {}
        self.to_ack: set[LoadClient] = set()  # clients whose pts may have moved
        self.saved_pts: dict[int, int] = {}
        self.sends = SendReport()
        self._inflight: set[asyncio.Task[None]] = set()
        # chat index -> devices that must receive a send into it (other than the sender)
        self.audience = [len(members) - 1 for members in plan.chats]

    def set_online(self, online: list[int]) -> None:
        """Only devices that connected are expected to receive (the rest never could)."""
        present = set(online)
        self.audience = [sum(m in present for m in members) - 1 for members in self.plan.chats]

    async def connect(self, which: list[int] | None = None) -> ConnectReport:
        """Open the sockets of ``which`` (default: all of ours), bounded concurrency."""
        devices = [d for d in (which or self.plan.devices) if d in self.plan.devices]
        limit = self.plan.scenario.connect_concurrency or len(devices) or 1
        gate, report = asyncio.Semaphore(limit), ConnectReport()
        started = time.monotonic()

        async def one(device: int) -> None:
            _, token, url = self.plan.devices[device]
            client = LoadClient(url, token, self.recorder, self.session,
                                pts=self.saved_pts.get(device), to_ack=self.to_ack)  # fmt: skip
            async with gate:
                t0 = time.monotonic()
                try:
                    await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT)
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionClosed,
                        RequestFailed) as exc:  # fmt: skip
                    report.failed += 1
                    report.errors[_reason(exc)] += 1
                    await client.close()
                    return
                report.times_ms.append((time.monotonic() - t0) * 1000.0)
            report.ok += 1
            report.connected.append(device)
            self.clients[device] = client

        await asyncio.gather(*(one(d) for d in devices))
        report.elapsed = time.monotonic() - started
        return report

    async def disconnect(self, which: list[int] | None = None) -> int:
        """Close ``which`` (default: all), remembering their pts for a later catch-up."""
        devices = [d for d in (which or list(self.clients)) if d in self.clients]
        gate = asyncio.Semaphore(512)

        async def one(device: int) -> None:
            client = self.clients.pop(device)
            self.saved_pts[device] = client.pts or 0
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 10)

        await asyncio.gather(*(one(d) for d in devices))
        return len(devices)

    def alive(self) -> tuple[int, int]:
        """(sockets open, sockets the server closed on us)."""
        dropped = sum(1 for c in self.clients.values() if c.closed)
        return len(self.clients) - dropped, dropped

    async def send(self, duration: float, rate: float) -> SendReport:
        """Drive our slots for ``duration`` s at ``rate`` msg/s (0: closed loop); await acks."""
        slots = [s for s in self.plan.slots if s.device in self.clients]
        started = time.monotonic()
        if slots and rate > 0:
            await self._open_loop(slots, rate, started + duration)
        elif slots:
            await self._closed_loop(slots, started + duration)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self.plan.scenario.ack_timeout + 5)
        self.sends.elapsed = time.monotonic() - started
        return SendReport(self.sends.attempted, self.sends.acked, elapsed=self.sends.elapsed)

    async def _open_loop(self, slots: list[SendSlot], rate: float, end: float) -> None:
        start, issued, turn = time.monotonic(), 0, 0
        while (now := time.monotonic()) < end:
            due = int((now - start) * rate) - issued
            for _ in range(due):
                issued += 1
                if len(self._inflight) >= MAX_IN_FLIGHT:
                    self.sends.skipped += 1
                    continue
                slot, turn = slots[turn % len(slots)], turn + 1
                task = asyncio.create_task(self._send_one(slot))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(0.005)

    async def _closed_loop(self, slots: list[SendSlot], end: float) -> None:
        per_slot = self.plan.scenario.messages_per_sender

        async def runner(slot: SendSlot, share: int) -> None:
            sent = 0
            while (per_slot == 0 or sent < share) and time.monotonic() < end:
                await self._send_one(slot)
                sent += 1

        window = max(1, self.plan.scenario.window)
        shares = [per_slot // window + (1 if i < per_slot % window else 0) for i in range(window)]
        runners = [runner(s, share) for s in slots for share in shares if share or not per_slot]
        await asyncio.gather(*runners)

    async def _send_one(self, slot: SendSlot) -> None:
        client, report = self.clients[slot.device], self.sends
        report.attempted += 1
        sent_at = time.time()
        request = messages_pb2.SendMessage(
            chat_id=self.plan.chat_ids[slot.chat], client_msg_id=secrets.token_hex(8),
            body=chat_pb2.MessageBody(text=repr(sent_at)),
        )  # fmt: skip
        try:
            reply = await client.request(
                "send_message", request, timeout=self.plan.scenario.ack_timeout
            )
        except (RequestFailed, TimeoutError, ConnectionClosed, ConnectionError) as exc:
            report.failed += 1
            report.errors[_reason(exc)] += 1
            return
        report.ack_ms.append((time.time() - sent_at) * 1000.0)
        report.acked += 1
        report.acked_ids[reply.message_id] = (sent_at, max(0, self.audience[slot.chat]))

    def status(self) -> tuple[int, int]:
        """(deliveries our acked sends expect, deliveries our devices received)."""
        expected = sum(r for _, r in self.sends.acked_ids.values())
        return expected, self.recorder.delivered

    def receipts(self) -> Recorder:
        return self.recorder

    def take(self) -> tuple[SendReport, Recorder]:
        """This step's sends and receipts; the next step starts from zero."""
        taken = self.sends, self.recorder
        self.sends, self.recorder = SendReport(), Recorder()
        for client in self.clients.values():
            client.recorder = self.recorder
        return taken

    async def ack_sweep(self) -> None:
        """Every ack interval: each device with new updates sends its delivered-ack."""
        interval = self.plan.scenario.ack_interval
        while interval > 0:
            await asyncio.sleep(interval)
            due = list(self.to_ack)  # the clients hold this very set: empty it in place
            self.to_ack.clear()
            for client in due:
                frame = client.ack_frame()
                if frame is not None:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await client.send_raw(frame)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RequestFailed):
        return exc.reason
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"HTTP_{exc.status}"
    if isinstance(exc, ConnectionClosed):
        return f"CLOSED_{exc.code}"
    if isinstance(exc, TimeoutError):
        return "TIMEOUT"
    return type(exc).__name__


async def _serve(plan: WorkerPlan, pipe: Connection) -> None:
    connector = aiohttp.TCPConnector(limit=0, local_addr=(plan.source_ip, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        worker = Worker(plan, session)
        sweep = asyncio.create_task(worker.ack_sweep())
        try:
            await _command_loop(worker, pipe)
        finally:
            sweep.cancel()
            await worker.disconnect()


async def _command_loop(worker: Worker, pipe: Connection) -> None:
    loop, parent = asyncio.get_running_loop(), os.getppid()
    deadline = time.monotonic() + MAX_LIFETIME
    while time.monotonic() < deadline and os.getppid() == parent:
        ready = await loop.run_in_executor(None, pipe.poll, 1.0)
        if not ready:
            continue
        command, args = pipe.recv()
        if command == "stop":
            return
        result: Any = getattr(worker, command)(*args)
        if asyncio.iscoroutine(result):
            result = await result
        pipe.send(result)
        if command in ("connect", "take", "disconnect"):
            gc.collect()


def worker_main(plan: WorkerPlan, pipe: Connection) -> None:
    """The worker process's entry point (multiprocessing target).

    The cyclic GC is off: a full collection over 10,000 clients' objects pauses the loop
    for hundreds of ms, which the report would blame on the server. The worker collects
    between commands instead, when nothing is being timed."""
    gc.disable()
    raise_nofile()
    import uvloop

    uvloop.run(_serve(plan, pipe))
