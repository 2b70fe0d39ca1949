"""The gRPC hop alone: unary calls or one long-lived stream, one send per message or batches.

``python -m load.grpcpath --rate 3000 --seconds 10 --batch 30`` starts a grpc.aio server
(uvloop, generic handlers, no interceptors) in a child process on 127.0.0.1 whose handler
only decodes a RelaySendsRequest and answers one SendMessageResult per item, and drives it
from this process in four modes: ``unary-1`` (one unary call per item), ``unary-batch``
(items coalesced by svckit.coalesce.Coalescer into calls of up to --batch items, one call in
flight, like gateway/relays.py's SendRelay), ``stream-1`` (one bidi stream, a request and a
response message per item) and ``stream-batch`` (the same coalesced batches as message pairs
on the stream), after ``none``: the same generator without gRPC (the handler called in this
process), the client's floor. Unary calls carry a ~100-byte authorization header and a
deadline, as the gateway's do; the stream carries the header once. Each mode runs open loop
at --rate items/s for --seconds (items made on ~1 ms ticks, each awaited for its own
result), then for --max seconds closed loop with --window items outstanding (the most it
sustains). It prints items/s, submit-to-result latency p50/p99 and the CPU each process
spent per item (time.process_time: all threads, grpc's own included). A measurement for
``load/README.md``, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import multiprocessing
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import grpc
import uvloop
from grpc.aio import EOF  # type: ignore[attr-defined]
from minitg.chat.v1 import chat_pb2
from minitg.chat.v1.chat_internal_service_pb2 import (
    RelayedSend,
    RelaySendsRequest,
    RelaySendsResponse,
    SendMessageResult,
)
from minitg.chat.v1.chat_service_pb2 import SendMessageRequest

from svckit.coalesce import Coalescer

SERVICE = "minitg.bench.v1.Relay"
MODES = ("none", "unary-1", "unary-batch", "stream-1", "stream-batch")
METADATA = (("authorization", "Service " + "k" * 92),)  # the internal credential's size
DEADLINE, TICK, WARMUP, DRAIN = 10.0, 0.001, 1.0, 15.0
SESSIONS = [f"s{n:021d}" for n in range(1000)]  # token_urlsafe(16) is 22 characters
Submit = Callable[[RelayedSend], Awaitable[SendMessageResult]]


def message_id(item: RelayedSend) -> int:
    """What the server answers for ``item`` (the client checks it)."""
    return item.user_id << 32 | item.send.chat_id


def answer(request: RelaySendsRequest) -> RelaySendsResponse:
    """The server's whole work: one SendMessageResult per item, derived from the item."""
    now, reply = int(time.time() * 1000), RelaySendsResponse()
    for i in request.items:
        sent = reply.results.add().response
        sent.message_id, sent.seq, sent.date_ms = message_id(i), i.send.chat_id, now
        sent.pts, sent.pts_count = 7, 1
    return reply


async def _unary(request: RelaySendsRequest, context: Any) -> RelaySendsResponse:
    return answer(request)


async def _stream(requests: AsyncIterator[RelaySendsRequest], context: Any) -> Any:
    async for request in requests:
        yield answer(request)


async def _serve(conn: Connection) -> None:
    """Serve until the parent closes the pipe; answer b"cpu" with this process's CPU."""
    codec: Any = {
        "request_deserializer": RelaySendsRequest.FromString,
        "response_serializer": RelaySendsResponse.SerializeToString,
    }
    handlers = {
        "Send": grpc.unary_unary_rpc_method_handler(_unary, **codec),
        "Stream": grpc.stream_stream_rpc_method_handler(_stream, **codec),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    conn.send(port)
    loop, done = asyncio.get_running_loop(), asyncio.Event()

    def readable() -> None:
        try:
            conn.recv_bytes()
            conn.send(time.process_time())
        except (EOFError, OSError):  # the parent closed the pipe, or died
            loop.remove_reader(conn.fileno())
            done.set()

    loop.add_reader(conn.fileno(), readable)
    await done.wait()
    await server.stop(0)


def serve(conn: Connection) -> None:
    """The child process: the parent handles ^C and stops us by closing the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uvloop.run(_serve(conn))


class Server:
    """The child process serving the four modes, and its CPU clock."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve, args=(child,), name="grpcpath", daemon=True)
        self._proc.start()
        child.close()
        try:
            self.port = int(self._ask(30.0))
        except BaseException:
            self.close()
            raise

    def _ask(self, timeout: float) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError("the gRPC server process did not answer")
        return self._conn.recv()

    def cpu(self) -> float:
        self._conn.send_bytes(b"cpu")
        return float(self._ask(5.0))

    def close(self) -> None:
        self._conn.close()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


class Transport:
    """One channel's RelaySends as a unary call or as message pairs on one bidi stream."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        codec: Any = {
            "request_serializer": RelaySendsRequest.SerializeToString,
            "response_deserializer": RelaySendsResponse.FromString,
        }
        self._unary = channel.unary_unary(f"/{SERVICE}/Send", **codec)
        self._open: Any = channel.stream_stream(f"/{SERVICE}/Stream", **codec)
        self._pending: deque[asyncio.Future[RelaySendsResponse]] = deque()
        self._lock, self.calls = asyncio.Lock(), 0
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def unary(self, request: RelaySendsRequest) -> RelaySendsResponse:
        self.calls += 1
        reply: RelaySendsResponse = await self._unary(request, metadata=METADATA, timeout=DEADLINE)
        return reply

    async def streamed(self, request: RelaySendsRequest) -> RelaySendsResponse:
        """Write ``request`` (one write at a time, grpc allows no more); await its reply."""
        if self._call is None:
            self._call = self._open(metadata=METADATA)
            self._reader = asyncio.create_task(self._read())
        self.calls += 1
        reply: asyncio.Future[RelaySendsResponse] = asyncio.get_running_loop().create_future()
        async with self._lock:
            self._pending.append(reply)
            await self._call.write(request)
        return await reply

    async def _read(self) -> None:
        try:
            while (reply := await self._call.read()) is not EOF:
                waiter = self._pending.popleft()
                if not waiter.done():  # not given up by its submitter
                    waiter.set_result(reply)
        finally:
            for waiter in self._pending:
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the stream ended"))

    async def close(self) -> None:
        if self._call is not None and self._reader is not None:
            self._call.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def submitter(mode: str, transport: Transport, batch: int) -> Submit:
    """``submit(item) -> its result`` for ``mode``; ``none``: no gRPC, the floor."""
    call = transport.unary if mode.startswith("unary") else transport.streamed

    async def one(item: RelayedSend) -> SendMessageResult:
        return (await call(RelaySendsRequest(items=[item]))).results[0]

    async def many(items: list[RelayedSend]) -> list[SendMessageResult | BaseException]:
        return list((await call(RelaySendsRequest(items=items))).results)

    async def local(item: RelayedSend) -> SendMessageResult:
        return answer(RelaySendsRequest(items=[item])).results[0]

    if mode == "none":
        return local
    if mode.endswith("-1"):
        return one
    return Coalescer(many, max_items=batch, max_in_flight=1, name="grpcpath").submit


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    bad: int = 0  # a result that is not its item's
    failed: int = 0


async def _one(submit: Submit, n: int, started: float, tally: Tally) -> None:
    body = chat_pb2.MessageBody(text=f"message {n}")
    cid = f"0b1c2d3e-4f50-4a61-8b72-{n:012d}"  # a UUID's length
    send = SendMessageRequest(chat_id=n + 1, client_msg_id=cid, body=body)
    item = RelayedSend(user_id=n % 10_000 + 1, session_id=SESSIONS[n % 1000], send=send)
    try:
        result = await submit(item)
    except Exception:
        tally.failed += 1
        return
    tally.latencies.append(time.perf_counter() - started)
    tally.bad += result.response.message_id != message_id(item)


async def _settle(tasks: set[asyncio.Task[None]]) -> None:
    """Wait up to DRAIN seconds for the items out; cancel the rest (counted as lost)."""
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=DRAIN)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


async def open_loop(submit: Submit, rate: float, seconds: float, items: Iterator[int],
                    tally: Tally) -> int:  # fmt: skip
    """Items made on ~1 ms ticks at ``rate`` for ``seconds``, each awaited by its own task."""
    total, made, tasks = int(rate * seconds), 0, set()
    start = time.perf_counter()
    while made < total:
        await asyncio.sleep(TICK)
        now = time.perf_counter()
        for _ in range(min(total, int(rate * (now - start))) - made):
            task = asyncio.create_task(_one(submit, next(items), now, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            made += 1
    await _settle(tasks)
    return total


async def closed_loop(submit: Submit, window: int, seconds: float, items: Iterator[int],
                      tally: Tally) -> int:  # fmt: skip
    """``window`` submitters, each sending its next item when the last one returned."""
    stop, made = time.perf_counter() + seconds, 0

    async def worker() -> None:
        nonlocal made
        while time.perf_counter() < stop:
            made += 1
            await _one(submit, next(items), time.perf_counter(), tally)

    await _settle({asyncio.create_task(worker()) for _ in range(window)})
    return made


async def _phase(mode: str, run: str, drive: Callable[[Tally], Awaitable[int]],
                 transport: Transport, server: Server) -> dict[str, Any]:  # fmt: skip
    gc.collect()
    tally, calls = Tally(), transport.calls
    wall, cpu, server_cpu = time.perf_counter(), time.process_time(), server.cpu()
    expected = await drive(tally)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = server.cpu() - server_cpu
    lat, done = sorted(tally.latencies), len(tally.latencies)
    return {
        "mode": mode, "run": run, "expected": expected, "items": done,
        "bad": tally.bad, "failed": tally.failed, "lost": expected - done - tally.failed,
        "items_per_s": done / wall, "wall_s": wall,
        "p50_ms": 1e3 * lat[done // 2] if lat else None,
        "p99_ms": 1e3 * lat[min(done - 1, done * 99 // 100)] if lat else None,
        "client_us": 1e6 * cpu / max(done, 1), "server_us": 1e6 * server_cpu / max(done, 1),
        "items_per_call": done / (transport.calls - calls) if transport.calls > calls else None,
    }  # fmt: skip


async def _mode(server: Server, mode: str, rate: float, seconds: float, batch: int,
                max_seconds: float, window: int) -> list[dict[str, Any]]:  # fmt: skip
    """A fresh channel; an unmeasured warm-up, the run at ``rate``, the max run."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        transport, items = Transport(channel), itertools.count()
        submit = submitter(mode, transport, batch)
        await open_loop(submit, rate, min(WARMUP, seconds), items, Tally())
        drive = partial(open_loop, submit, rate, seconds, items)
        rows = [await _phase(mode, f"{rate:g}/s", drive, transport, server)]
        if max_seconds > 0:
            drive = partial(closed_loop, submit, window, max_seconds, items)
            rows.append(await _phase(mode, f"max/{window}", drive, transport, server))
        await transport.close()
    return rows


async def _modes(server: Server, modes: Sequence[str], *args: Any) -> list[dict[str, Any]]:
    return [row for mode in modes for row in await _mode(server, mode, *args)]


def measure(modes: Sequence[str], rate: float, seconds: float, batch: int,
            max_seconds: float = 0.0, window: int = 256) -> list[dict[str, Any]]:  # fmt: skip
    """Start the server process, measure each mode, stop it (always)."""
    server = Server()
    try:
        rows: list[dict[str, Any]] = uvloop.run(
            _modes(server, modes, rate, seconds, batch, max_seconds, window)
        )
        return rows
    finally:
        server.close()


def reference_seconds() -> float:
    """load/bench.py's speed reference: 10^7 Python additions, timed."""
    started, total = time.perf_counter(), 0
    for n in range(10_000_000):
        total += n
    return time.perf_counter() - started


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | run | items | items/s | p50 ms | p99 ms | client us/item | server us/item "
        "| items/call | lost+failed+bad |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        p50, p99, per_call = (
            "-" if r[k] is None else f"{r[k]:.{d}f}"
            for k, d in (("p50_ms", 2), ("p99_ms", 2), ("items_per_call", 1))
        )
        lines.append(
            f"| {r['mode']} | {r['run']} | {r['items']:,} | {r['items_per_s']:,.0f} | {p50} "
            f"| {p99} | {r['client_us']:.1f} | {r['server_us']:.1f} | {per_call} "
            f"| {r['lost'] + r['failed'] + r['bad']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=3000, help="offered items/s")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds a mode")
    parser.add_argument("--batch", type=int, default=30, help="most items a batched call")
    parser.add_argument("--max", type=float, default=5, help="seconds of the max run (0: none)")
    parser.add_argument("--window", type=int, default=256, help="items out in the max run")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not set(args.modes.split(",")) <= set(MODES):
        parser.error(f"--modes: a subset of {','.join(MODES)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # into measure()'s finally
    speed = [reference_seconds()]
    rows = measure(
        args.modes.split(","), args.rate, args.seconds, args.batch, args.max, args.window
    )
    speed.append(reference_seconds())
    print(f"grpcpath: batch {args.batch}, reference loop {speed[0]:.2f} s / {speed[1]:.2f} s\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "reference_s": speed, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
