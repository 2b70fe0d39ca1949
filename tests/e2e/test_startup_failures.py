"""A ``minitg serve`` that cannot start exits non-zero within seconds, with one line.

Before, a taken port left the process printing a traceback and then hanging (the roles
started before the failing one kept their threads and servers), deaf to SIGTERM and
SIGINT. Now the runner stops whatever had started and the CLI prints one reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from svckit.netports import free_port
from tests.e2e.processes import REPO

pytestmark = pytest.mark.e2e

EXIT_WITHIN = 20.0  # seconds: generous for a loaded 2-core machine, far below "hangs"


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")}
    env |= {
        "MINITG_DATA_DIR": str(tmp_path),
        "MINITG_BCRYPT_COST": "4",
        "MINITG_LOG_FORMAT": "json",
        "MINITG_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "MINITG_METRICS_ADDR": "127.0.0.1:0",
        **{f"MINITG_{r}_LISTEN": f"127.0.0.1:{free_port()}" for r in ("AUTH", "CHAT", "PRESENCE")},
    }
    return env | overrides


def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "svckit.cli", "serve", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int | None, str]:
    """Wait up to ``timeout`` s; return (exit code or None if it had to be killed, stderr)."""
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        return None, err


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another socket listens on for the test's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("variable", ["MINITG_CHAT_LISTEN", "MINITG_HTTP_ADDR"])
def test_taken_port_exits_nonzero_with_one_line(
    tmp_path: Path, taken_port: int, variable: str
) -> None:
    """A taken gRPC or HTTP port: exit 1 within seconds, one stderr line naming it, no traceback."""
    proc = _serve(_env(tmp_path, **{variable: f"127.0.0.1:{taken_port}"}))
    code, err = _finish(proc, EXIT_WITHIN)
    assert 1 == code, err
    expected = (
        f"minitg: cannot start --target all: cannot listen on 127.0.0.1:{taken_port}: "
        "address already in use"
    )
    assert [expected] == [line for line in err.splitlines() if line.startswith("minitg:")]
    assert "Traceback" not in err


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a wedged database)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_sigterm_during_startup_exits(tmp_path: Path, silent_server: int) -> None:
    """SIGTERM while a role waits on its database at start-up stops the process promptly."""
    env = _env(
        tmp_path,
        MINITG_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{silent_server}/minitg",
        MINITG_REDIS_URL="redis://127.0.0.1:6379/0",
        MINITG_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/",
        MINITG_INTERNAL_TOKEN="t" * 32,
    )
    proc = _serve(env, "--target", "auth")
    time.sleep(2.0)  # the auth role is now connecting to the silent "database"
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    code, err = _finish(proc, EXIT_WITHIN)
    assert 0 == code, f"exit code {code} ({EXIT_WITHIN} s after SIGTERM; None: hung):\n{err}"
    assert "Traceback" not in err


def test_missing_database_exits_nonzero_with_one_line(tmp_path: Path) -> None:
    """A database that does not exist (no retry fixes it) stops start-up with one line."""
    env = _env(
        tmp_path,
        MINITG_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/minitg_no_such_database",
        MINITG_REDIS_URL="redis://127.0.0.1:6379/0",
        MINITG_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/",
        MINITG_INTERNAL_TOKEN="t" * 32,
    )
    code, err = _finish(_serve(env, "--target", "auth"), EXIT_WITHIN)
    assert 1 == code, err
    (line,) = [line for line in err.splitlines() if line.startswith("minitg:")]
    assert 'database "minitg_no_such_database" does not exist' in line
    assert "Traceback" not in err
