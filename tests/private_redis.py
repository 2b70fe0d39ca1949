"""A Redis server of the test's own (a free port, no persistence), so an api or e2e test can restart
it, which empties it as a real restart does, without touching the shared one on 6379."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from svckit.netports import free_port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PrivateRedis:
    """Start, stop and restart one extra ``redis-server``; it keeps nothing across restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.base = Path(tempfile.mkdtemp(prefix="minitg-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        if _port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken")
        log = (self.base / "server.out").open("ab")
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.base)],
            stdout=log, stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError(f"private Redis did not start:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
