"""Start ``minitg`` as real subprocesses and wait for them, for the e2e tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]


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
