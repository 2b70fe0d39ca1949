"""One scenario against one running system: chats, workers, phases, drain, numbers."""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from load import report
from load.pool import WorkerPool
from load.procstat import ProcSampler, rss_bytes
from load.profile import Profiler
from load.scenarios import Scenario, layout, offline_devices, senders
from load.seed import Device, control_chats, create_chats, timed
from load.system import System
from load.watch import Watch, worst_seconds
from load.workers import ConnectReport, SendReport, WorkerPlan

T = TypeVar("T")
_SOURCES = itertools.count(1)
WARM_UP_S = 3.0  # each scenario's workers get fresh loopback source addresses


class Run:
    """The state of one scenario run: what each phase measured, for report.summarize."""

    def __init__(self, scenario: Scenario, system: System, sampler: ProcSampler) -> None:
        self.scenario, self.system, self.sampler = scenario, system, sampler
        self.watch = Watch(sampler, system.metric_pages())
        self.phases: dict[str, float] = {}
        self.connects: list[ConnectReport] = []
        self.reconnects: list[ConnectReport] = []
        self.sends: list[SendReport] = []
        self.steps: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.profile_dir: Path | None = None

    def profile(self, seconds: float) -> Profiler | None:
        """py-spy on every server and generator process for ``seconds`` (only with
        --profile)."""
        if self.profile_dir is None:
            return None
        return Profiler(self.profile_dir, self.scenario.name, self.sampler.own, seconds)

    async def timed(self, phase: str, work: Awaitable[T]) -> T:
        result, seconds = await timed(work)
        self.phases[phase] = round(seconds, 2)
        return result


def plans(
    scenario: Scenario, system: System, devices: list[Device], chat_ids: list[int], workers: int
) -> list[WorkerPlan]:
    """Devices round-robin over workers and gateways; each slot goes with its device."""
    urls = [g.replace("http://", "ws://") for g in system.gateways]
    chats = layout(scenario)
    source = next(_SOURCES) % 250 + 1
    out = [
        WorkerPlan(i, scenario, {}, [], chat_ids, chats, f"127.0.{source}.{i + 1}")
        for i in range(workers)
    ]
    for index in range(scenario.connections):
        device = devices[index]
        url = urls[index % len(urls)]
        out[index % workers].devices[index] = (device.user_id, device.token, url)
    for slot in senders(scenario, chats):
        out[slot.device % workers].slots.append(slot)
    return out


async def run_scenario(
    scenario: Scenario,
    system: System,
    devices: list[Device],
    workers: int,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Create the chats, start the workers, run the scenario's phases, summarize."""
    chats = layout(scenario)
    if system.shape == "control":
        chat_ids = await control_chats(system.gateways[0], devices, chats)
    else:
        chat_ids = await create_chats(system.gateways, devices, chats)
    sampler = ProcSampler(system.pids())
    run = Run(scenario, system, sampler)
    run.profile_dir = profile_dir
    pool = WorkerPool(plans(scenario, system, devices, chat_ids, workers))
    for label, pid in pool.pids().items():
        sampler.add(label, pid)
    sampling = asyncio.create_task(run.watch.run())
    calls_before = await grpc_calls(system.metrics)
    try:
        await PHASES[scenario.kind](run, pool)
        alive = await pool.call("alive")
        run.extra["alive_at_end"] = sum(a for a, _ in alive)
        run.extra["dropped_by_server"] = sum(d for _, d in alive)
        taken = await pool.call("take", timeout=120)
        receipts = [recorder for _, recorder in taken]
        run.sends = [sends for sends, _ in taken] if run.sends else []
        usage = sampler.window()
        if system.shape != "control":
            run.extra["coalesced"] = await coalesced_batches(system.gateway_metric_pages())
            calls = await grpc_calls(system.metrics)
            run.extra["grpc_calls"] = {
                m: n - calls_before.get(m, 0.0)
                for m, n in sorted(calls.items(), key=lambda c: -c[1])
                if n > calls_before.get(m, 0.0)
            }
    finally:
        sampling.cancel()
        await pool.close()
    result = report.summarize(run, receipts, usage, len(chats))
    result["watch"] = {str(second): entry for second, entry in sorted(run.watch.seconds.items())}
    result["gc"] = run.watch.gc_summary()
    m = result.get("messages")
    if m and not run.steps:
        m["worst_seconds"] = worst_seconds(m["timeline"], m["first_send_s"], run.watch.seconds)
    return result


async def _scrape(urls: list[str]) -> list[str]:
    """The metric lines of every URL (``/metrics`` pages), concatenated; a page that
    cannot be read is left out (the report only loses that process's counts)."""
    lines: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for url in urls:
            try:
                async with http.get(url) as reply:
                    lines += (await reply.text()).splitlines()
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"load: could not read {url}: {exc}", file=sys.stderr)
    return lines


async def coalesced_batches(pages: list[str]) -> dict[str, dict[str, float]]:
    """Per batch kind (sends, acks, ...): calls and items summed over the gateways'
    ``minitg_coalesced_batch_items`` histograms, i.e. how much each coalesced call carried."""
    totals: dict[str, dict[str, float]] = {}
    for line in await _scrape(pages):
        match = _BATCH_SAMPLE.match(line)
        if match:
            field, kind, value = match.groups()
            entry = totals.setdefault(kind, {"calls": 0.0, "items": 0.0})
            entry["calls" if field == "count" else "items"] += float(value)
    for entry in totals.values():
        entry["per_call"] = round(entry["items"] / entry["calls"], 1) if entry["calls"] else 0.0
    return totals


async def grpc_calls(metrics: dict[str, str]) -> dict[str, float]:
    """gRPC calls served so far, by method, summed over every server process (from
    ``minitg_grpc_server_handled_total``): which hops a run really paid for."""
    calls: dict[str, float] = {}
    for line in await _scrape(list(metrics.values())):
        match = _CALL_SAMPLE.match(line)
        if match:
            calls[match.group(1)] = calls.get(match.group(1), 0.0) + float(match.group(2))
    return calls


_BATCH_SAMPLE = re.compile(r'minitg_coalesced_batch_items_(count|sum)\{batch="([a-z_]+)"\} (\S+)')
_CALL_SAMPLE = re.compile(
    r'minitg_grpc_server_handled_total\{[^}]*grpc_method="(\w+)"[^}]*\} (\S+)'
)


async def _connect(run: Run, pool: WorkerPool) -> None:
    run.connects = await run.timed("connect_s", pool.call("connect", None))
    online = sorted(d for report in run.connects for d in report.connected)
    await pool.call("set_online", online)


async def _idle(run: Run, pool: WorkerPool) -> None:
    before = {label: rss_bytes(pid) for label, pid in run.system.gateway_pids().items()}
    await _connect(run, pool)
    await asyncio.sleep(2)  # let registry writes and presence settle before measuring
    after = {label: rss_bytes(pid) for label, pid in run.system.gateway_pids().items()}
    held = sum(c.ok for c in run.connects)
    gateways = max(1, len(run.system.gateways))
    run.extra["gateway_rss_per_connection_kb"] = {
        label: round((after[label] - before[label]) / 1024 / max(1, held / gateways), 1)
        for label in after
    }
    run.sampler.mark()
    profiler = run.profile(run.scenario.duration)
    await run.timed("hold_s", asyncio.sleep(run.scenario.duration))
    if profiler is not None:
        profiler.stop()


async def _traffic(run: Run, pool: WorkerPool) -> None:
    await _connect(run, pool)
    await asyncio.sleep(1)
    run.sampler.mark()
    if run.scenario.rates:
        await _ladder(run, pool)
    else:
        await _send_and_drain(run, pool, run.scenario.rate)


async def _ladder(run: Run, pool: WorkerPool) -> None:
    """Each rate in turn on the same sockets, until two steps in a row miss the SLO.

    A short unmeasured warm-up at the first rate comes first: the first seconds of traffic
    after 10,000 connects carry one-off costs (caches filling, the first full GC of the
    server's heap) that belong to no rate."""
    await pool.call("send", WARM_UP_S, run.scenario.rates[0] / len(pool.procs))
    await _drain(pool, min(2.0, run.scenario.drain))
    await pool.call("take", timeout=120)
    misses = 0
    for rate in run.scenario.rates:
        await _send_and_drain(run, pool, rate)
        taken = await pool.call("take", timeout=120)
        sends, receipts = [s for s, _ in taken], [r for _, r in taken]
        step = report.messages(sends, receipts, run.phases["send_s"])
        step["offered_rate"] = rate
        step["within_slo"] = report.within_slo(step, run.scenario.slo_p99_ms)
        step["worst_seconds"] = worst_seconds(
            step["timeline"], step["first_send_s"], run.watch.seconds
        )
        run.steps.append(step)
        misses = 0 if step["within_slo"] else misses + 1
        if misses >= 2:
            return


async def _storm(run: Run, pool: WorkerPool) -> None:
    run.sampler.mark()
    await _connect(run, pool)
    await _send_and_drain(run, pool, 0.0)


async def _catchup(run: Run, pool: WorkerPool) -> None:
    await _connect(run, pool)
    away = offline_devices(run.scenario, layout(run.scenario))
    await run.timed("disconnect_s", pool.call("disconnect", away))
    run.sampler.mark()
    run.sends = await run.timed("send_s", pool.call("send", run.scenario.duration, 0.0))
    run.reconnects = await run.timed("catchup_s", pool.call("connect", away))
    await run.timed("drain_s", _drain(pool, run.scenario.drain))


async def _send_and_drain(run: Run, pool: WorkerPool, rate: float) -> None:
    per_worker = rate / len(pool.procs)
    timeout = run.scenario.duration + run.scenario.ack_timeout + 60
    profiler = run.profile(run.scenario.duration)
    run.sends = await run.timed(
        "send_s", pool.call("send", run.scenario.duration, per_worker, timeout=timeout)
    )
    if profiler is not None:
        profiler.stop()
    await run.timed("drain_s", _drain(pool, run.scenario.drain))


async def _drain(pool: WorkerPool, limit: float) -> None:
    """Until every acked message reached every recipient, or ``limit`` s passed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        statuses = await pool.call("status", timeout=60)
        if sum(r for _, r in statuses) >= sum(e for e, _ in statuses):
            return
        await asyncio.sleep(0.2)


PHASES = {"idle": _idle, "traffic": _traffic, "storm": _storm, "catchup": _catchup}
