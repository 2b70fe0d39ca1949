"""Start ``minitg`` as real subprocesses and wait for them, for the e2e tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port free now on 127.0.0.1, chosen BELOW the kernel's ephemeral range.

    A port the kernel handed out for ``bind(0)`` can be handed out again to any outgoing
    connection before the child process binds it (seen in CI: EADDRINUSE); ports outside
    the ephemeral range are never picked by the kernel, so only our own picks compete.
    """
    low, _ = _ephemeral_range()
    start = max(1024, low - 12_000)
    for _ in range(200):
        port = random.randrange(start, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


_HANDED_OUT: set[int] = {25690}  # the private broker's distribution port (private_broker.py)


@dataclass
class MinitgProcess:
    """One ``minitg serve`` process and the log file it writes."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    signalled: bool = False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal_term(self) -> None:
        """Send SIGTERM once (a second one would hit the default handler during exit)."""
        if not self.signalled and self.proc.poll() is None:
            self.signalled = True
            self.proc.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float) -> int:
        """SIGTERM, then wait up to ``timeout`` s; return the exit code (kill if stuck)."""
        self.signal_term()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"{self.name} did not exit within {timeout} s:\n{self.log_text()}"
            ) from None


def minitg(args: list[str], env: Mapping[str, str], log_path: Path, name: str) -> MinitgProcess:
    """Start ``python -m svckit.cli ARGS`` with ``env`` on top of a clean environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")}
    full_env.update(env)
    full_env.setdefault("MINITG_LOG_FORMAT", "json")
    handle = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "svckit.cli", *args],
        cwd=REPO,
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return MinitgProcess(name, proc, log_path, env)


def run_minitg(args: list[str], env: Mapping[str, str], timeout: float = 60) -> str:
    """Run a short ``minitg`` command to completion; return its output or fail with it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")}
    full_env.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "svckit.cli", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"minitg {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


async def wait_http_ok(
    url: str, procs: list[MinitgProcess], timeout: float = 30
) -> dict[str, object]:
    """Poll ``url`` until it answers 200; fail early when a process died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            for p in procs:
                if p.proc.poll() is not None:
                    raise AssertionError(f"{p.name} exited {p.proc.returncode}:\n{p.log_text()}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    body = await resp.json()
                    if resp.status == 200:
                        return dict(body)
                    last = f"{resp.status} {body}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.log_text()}" for p in procs)
    raise AssertionError(f"{url} not healthy within {timeout} s: {last}\n{logs}")
