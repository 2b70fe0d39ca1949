"""CPU% and resident memory of the processes under test, read from /proc.

Our own processes (the servers we started, the generator's workers, the control) are
known by pid; PostgreSQL, Redis and RabbitMQ are found by name (``postgres``,
``redis-server``, ``beam.smp``) and summed per group, so a PostgreSQL backend that comes
and goes is counted while it lives. CPU% is per core (200% = both cores of this machine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BY_NAME = {"postgres": "postgresql", "redis-server": "redis", "beam.smp": "rabbitmq"}


def raise_nofile(wanted: int = 65_536) -> int:
    """Raise RLIMIT_NOFILE of this process as far as allowed; return the soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_soft, new_hard in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
            return new_soft
        except (ValueError, OSError):
            continue
    return soft


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, utime+stime ticks, rss bytes) or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return comm, int(rest[11]) + int(rest[12]), int(rest[21]) * PAGE


def rss_bytes(pid: int) -> int:
    """Resident set size now, 0 when the process is gone."""
    stat = _stat(pid)
    return stat[2] if stat is not None else 0


def hwm_bytes(pid: int) -> int:
    """VmHWM (peak resident set since the process started), 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _named_pids() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {group: [] for group in BY_NAME.values()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().strip()
        except OSError:
            continue
        group = BY_NAME.get(comm)
        if group is not None:
            found[group].append(int(entry.name))
    return found


@dataclass
class GroupUsage:
    """One process (or named group) over a window: CPU ticks used and RSS peaks."""

    ticks: int = 0
    peak_rss: int = 0
    start_rss: int = 0
    processes: int = 0
    pid_ticks: dict[int, int] = field(default_factory=dict)


class ProcSampler:
    """Samples every ``interval`` s; ``window()`` gives CPU% since the last ``mark()``."""

    def __init__(self, own: dict[str, int]) -> None:
        self.own = dict(own)  # label -> pid
        self.groups: dict[str, GroupUsage] = {}
        self._marked_at = time.monotonic()
        self._sampled_at = self._marked_at
        self.last: dict[str, float] = {}  # label -> CPU % between the last two samples

    def add(self, label: str, pid: int) -> None:
        self.own[label] = pid

    def sample(self) -> None:
        """Read every process once: accumulate CPU ticks and RSS peaks per group."""
        members = {label: [pid] for label, pid in self.own.items()} | _named_pids()
        now = time.monotonic()
        elapsed, self._sampled_at = max(1e-6, now - self._sampled_at), now
        for label, pids in members.items():
            usage = self.groups.setdefault(label, GroupUsage())
            rss, used = 0, 0
            for pid in pids:
                stat = _stat(pid)
                if stat is None:
                    continue
                _, ticks, pid_rss = stat
                previous = usage.pid_ticks.get(pid)
                usage.pid_ticks[pid] = ticks
                if previous is not None:
                    used += max(0, ticks - previous)
                rss += pid_rss
            usage.ticks += used
            self.last[label] = round(100.0 * used / TICKS / elapsed, 1)
            usage.peak_rss = max(usage.peak_rss, rss)
            usage.start_rss = usage.start_rss or rss
            usage.processes = max(usage.processes, len(pids))

    def mark(self) -> None:
        """Start a new measuring window (CPU ticks and RSS peaks from now)."""
        self.sample()
        for usage in self.groups.values():
            usage.ticks, usage.peak_rss, usage.start_rss = 0, 0, 0
        self._marked_at = time.monotonic()
        self.sample()

    def window(self) -> dict[str, dict[str, float]]:
        """Per group since ``mark()``: cpu_percent, peak_rss_mb, start_rss_mb, processes."""
        self.sample()
        elapsed = max(1e-6, time.monotonic() - self._marked_at)
        report = {}
        for label, usage in sorted(self.groups.items()):
            entry = {
                "cpu_percent": round(100.0 * usage.ticks / TICKS / elapsed, 1),
                "peak_rss_mb": round(usage.peak_rss / 2**20, 1),
                "start_rss_mb": round(usage.start_rss / 2**20, 1),
                "processes": float(usage.processes),
            }
            pid = self.own.get(label)
            if pid is not None:
                entry["hwm_mb"] = round(hwm_bytes(pid) / 2**20, 1)
            report[label] = entry
        return report
