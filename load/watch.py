"""Second by second, what every process did: CPU %, GC pauses and event-loop lag.

A ladder step is decided by its worst seconds (the per-second timeline's highest
latencies), and those come every 10-20 s while the seconds around them are fine. The
watch records, for every second of a run, each process's CPU % (from /proc, PostgreSQL,
Redis and RabbitMQ included) and, for our servers, the GC pause time and the worst
event-loop lag their own metrics saw in that second (``minitg_gc_pause_seconds``,
``minitg_event_loop_lag_seconds``), so a report can say which process was busy or
stopped when a stall happened.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from load.procstat import TICKS, ProcSampler

_GC = re.compile(
    r'minitg_gc_pause_seconds_(sum|count|bucket)\{generation="(\d)"(?:,le="([^"]+)")?\} (\S+)'
)
_LAG_BUCKET = re.compile(r'minitg_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)')


def parse(text: str) -> dict[str, Any]:
    """From one /metrics page: per GC generation its collections, pause seconds and
    cumulative bucket counts (``le`` -> count); the same buckets summed over the
    generations; and the loop lag's buckets."""
    gens: dict[str, dict[str, Any]] = {}
    lag: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("minitg_"):
            continue
        if match := _GC.match(line):
            field, gen, le, value = match.groups()
            entry = gens.setdefault(gen, {"sum": 0.0, "count": 0.0, "le": {}})
            if field == "bucket":
                entry["le"][le] = float(value)
            else:
                entry[field] = float(value)
        elif match := _LAG_BUCKET.match(line):
            lag[match.group(1)] = float(match.group(2))
    pauses: dict[str, float] = {}
    for entry in gens.values():
        for le, count in entry["le"].items():
            pauses[le] = pauses.get(le, 0.0) + count
    return {
        "gc_s": sum(e["sum"] for e in gens.values()),
        "full": gens.get("2", {}).get("count", 0.0),
        "gens": gens,
        "gc": pauses,
        "lag": lag,
    }


def machine_ticks() -> list[int]:
    """The machine's CPU ticks from /proc/stat: user nice system idle iowait irq softirq
    steal (all cores summed)."""
    with open("/proc/stat") as stat:
        return [int(x) for x in stat.readline().split()[1:9]]


def machine_delta(before: list[int], after: list[int], seconds: float) -> dict[str, float]:
    """CPU % (of one core) the machine spent busy, waiting for I/O, and *stolen* by the
    hypervisor (a virtual machine's cores taken away: every process stalls at once)."""
    d = [b - a for a, b in zip(before, after, strict=True)]
    per = 100.0 / TICKS / max(seconds, 1e-6)
    busy = d[0] + d[1] + d[2] + d[5] + d[6]
    return {
        "cpu": round(busy * per, 1),
        "iowait": round(d[4] * per, 1),
        "steal": round(d[7] * per, 1),
    }


def worst_ms(before: dict[str, float], after: dict[str, float]) -> float:
    """The upper bound (ms) of the highest bucket that gained an observation between two
    readings of a cumulative histogram; 0 when nothing was observed, 10,000 when the
    observation was beyond the top bucket."""
    worst, below = 0.0, 0.0
    for le in sorted(after, key=float):
        gained = after[le] - before.get(le, 0.0)
        if gained > below:
            worst = min(float(le) * 1000.0, 10_000.0)
        below = gained
    return worst


class Watch:
    """Samples once per wall-clock second until cancelled; ``seconds`` holds the record:
    unix second -> label -> {"cpu": %, "gc_ms": paused, "gc_worst_ms": .., "gc_full":
    full collections, "lag_ms": ..}."""

    def __init__(self, sampler: ProcSampler, pages: dict[str, str]) -> None:
        self.sampler, self.pages = sampler, pages
        self.seconds: dict[int, dict[str, dict[str, float]]] = {}
        self._last: dict[str, dict[str, Any]] = {}
        self._first: dict[str, dict[str, Any]] = {}
        self._machine = (time.monotonic(), machine_ticks())

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=0.8)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                await asyncio.sleep(1.0 - time.time() % 1.0)
                second = int(time.time()) - 1  # the second that just ended
                self.sampler.sample()
                entry = {label: {"cpu": cpu} for label, cpu in self.sampler.last.items()}
                at, ticks = time.monotonic(), machine_ticks()
                entry["machine"] = machine_delta(self._machine[1], ticks, at - self._machine[0])
                self._machine = (at, ticks)
                readings = await asyncio.gather(*(self._read(http, u) for u in self.pages.values()))
                for label, reading in zip(self.pages, readings, strict=True):
                    if reading is not None:
                        entry.setdefault(label, {}).update(self._delta(label, reading))
                self.seconds[second] = entry

    async def _read(self, http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
        try:
            async with http.get(url) as reply:
                return parse(await reply.text())
        except (aiohttp.ClientError, TimeoutError):
            return None  # that process's figures are missing for this second

    def _delta(self, label: str, now: dict[str, Any]) -> dict[str, float]:
        before, self._last[label] = self._last.get(label), now
        self._first.setdefault(label, now)
        if before is None:
            return {}
        return {
            "gc_ms": round((now["gc_s"] - before["gc_s"]) * 1000.0, 1),
            "gc_worst_ms": worst_ms(before["gc"], now["gc"]),
            "gc_full": now["full"] - before["full"],
            "lag_ms": worst_ms(before["lag"], now["lag"]),
        }

    def gc_summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per server and GC generation over the whole watch: collections, pause ms in
        all, pauses over 25 ms and the worst pause's bucket bound."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for label, last in self._last.items():
            first = self._first[label]["gens"]
            for gen, now in sorted(last["gens"].items()):
                before = first.get(gen, {"sum": 0.0, "count": 0.0, "le": {}})
                collections = now["count"] - before["count"]
                if collections:
                    out.setdefault(label, {})[gen] = {
                        "collections": collections,
                        "ms": round((now["sum"] - before["sum"]) * 1000.0, 1),
                        "over_25ms": collections
                        - (now["le"]["0.025"] - before["le"].get("0.025", 0.0)),
                        "worst_ms": worst_ms(before["le"], now["le"]),
                    }
        return out


def worst_seconds(
    timeline: list[list[float]], first_second: int, record: dict[int, dict[str, Any]], top: int = 3
) -> list[dict[str, Any]]:
    """A step's ``top`` seconds of highest delivery latency, each with what every process
    did in it, and the step's median second for comparison (``timeline`` rows are
    [seconds since ``first_second``, deliveries, worst ms], as report.messages builds them)."""
    ranked = sorted(timeline, key=lambda row: -row[2])
    out = [
        {
            "second": int(row[0]),
            "worst_ms": row[2],
            "processes": record.get(first_second + int(row[0]), {}),
        }
        for row in ranked[:top]
    ]
    if ranked:
        middle = ranked[len(ranked) // 2]
        second = int(middle[0])
        out.append(
            {"second": second, "worst_ms": middle[2], "median": True,
             "processes": record.get(first_second + second, {})}
        )  # fmt: skip
    return out


def describe(seconds: list[dict[str, Any]]) -> str:
    """One line per second: its worst latency, then the machine's CPU % (with the time
    stolen by the hypervisor and waiting for I/O, when any) and each process's CPU %, GC
    ms and worst loop lag where it had any, busiest first."""
    lines = []
    for entry in seconds:
        parts = []
        for label, p in sorted(entry["processes"].items(), key=lambda kv: -kv[1].get("cpu", 0)):
            extra = "".join(
                f" {name} {p[key]:g}" for key, name in
                (("gc_ms", "gc"), ("gc_worst_ms", "gc<="), ("gc_full", "full"), ("lag_ms", "lag<="),
                 ("steal", "steal"), ("iowait", "iowait"))
                if p.get(key)
            )  # fmt: skip
            parts.append(f"{label} {p.get('cpu', 0):g}%{extra}")
        tag = "median" if entry.get("median") else f"s{entry['second']}"
        lines.append(f"{tag} {entry['worst_ms']:g} ms: " + ", ".join(parts))
    return "\n".join(lines)


def stall_text(result: dict[str, Any]) -> str:
    """The worst seconds of every step of one scenario run, as lines (empty when the
    run recorded none)."""
    steps = result.get("steps") or ([result["messages"]] if result.get("messages") else [])
    lines = []
    for step in steps:
        seconds = step.get("worst_seconds")
        if seconds:
            rate = step.get("offered_rate")
            lines.append(
                f"{result['scenario']} at {rate:g} msg/s:" if rate else f"{result['scenario']}:"
            )
            lines += ["  " + line for line in describe(seconds).splitlines()]
    return "\n".join(lines)


def gc_text(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """One line per server: each generation's collections, total pause, pauses over
    25 ms and the worst pause's bound."""
    return "\n".join(
        f"{label}: " + "; ".join(
            f"gen{g} {v['collections']:g} x, {v['ms']:g} ms, {v['over_25ms']:g} over 25 ms,"
            f" worst <= {v['worst_ms']:g} ms"
            for g, v in gens.items()
        )
        for label, gens in sorted(summary.items())
    )  # fmt: skip
