"""The wheel the Docker image installs is complete: installed alone, minitg really runs.

The wheel is built from exactly what ``.dockerignore`` lets into the image's build context,
installed into a fresh venv (dependencies from the package index, as the Dockerfile's
builder does), and then used from outside the repository: ``--help``, migrations from the
packaged SQL files, key generation, and the whole system answering ``/v1/health``.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_build_context(dest: Path) -> None:
    """Copy what the .dockerignore allow-list admits (its `!name` entries, minus caches)."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    admitted = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in admitted:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("context")
    out = tmp_path_factory.mktemp("wheels")
    copy_build_context(context)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), "."],
        cwd=context,
        check=True,
        timeout=180,
    )
    (built,) = out.glob("minitg-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    subprocess.run(
        [str(root / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=240,
    )
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that could import the repository's copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINITG_", "PYTHON"))}
    return {**env, **extra}


def test_wheel_holds_generated_code_migrations_and_type_markers(wheel: Path) -> None:
    """gen/ packages, every service's SQL migrations and the py.typed markers are inside."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "minitg/auth/v1/auth_service_pb2.py" in names
    assert "minitg/chat/v1/chat_service_pb2_grpc.py" in names
    for service in ("auth_service", "chat_service", "presence_service"):
        sql = fnmatch.filter(names, f"{service}/migrations/*/*.sql")
        expected = {p.relative_to(REPO).as_posix() for p in (REPO / service).rglob("*.sql")}
        assert expected == set(sql), service
        assert f"{service}/py.typed" in names
    assert {"svckit/py.typed", "gateway/py.typed"} <= names
    assert {"gateway/static/index.html", "gateway/static/docs.js"} <= names  # the /docs page


def test_installed_command_runs(venv: Path, tmp_path: Path) -> None:
    """`minitg --help`, `migrate up`/`status` and `keygen` work from the installed wheel."""
    minitg = str(venv / "bin" / "minitg")
    env = clean_env(MINITG_DATA_DIR=str(tmp_path / "var"), MINITG_LOG_LEVEL="WARNING")
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 60}
    assert "serve" in subprocess.run([minitg, "--help"], check=True, **run).stdout
    (tmp_path / "var").mkdir()
    subprocess.run([minitg, "migrate", "up"], check=True, **run)
    status = subprocess.run([minitg, "migrate", "status"], check=True, **run).stdout
    assert "applied" in status and "pending" not in status
    key = subprocess.run([minitg, "keygen", "--dir", str(tmp_path / "jwt")], check=True, **run)
    assert key.stdout.strip().endswith(".pem")


@pytest.fixture
def embedded_system(venv: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = clean_env(
        MINITG_DATA_DIR=str(tmp_path / "var"),
        MINITG_HTTP_ADDR=f"127.0.0.1:{port}",
        MINITG_AUTH_LISTEN="127.0.0.1:0",
        MINITG_CHAT_LISTEN="127.0.0.1:0",
        MINITG_PRESENCE_LISTEN="127.0.0.1:0",
        MINITG_METRICS_ADDR="",
        MINITG_BCRYPT_COST="4",
        MINITG_SHUTDOWN_GRACE_SECONDS="2",
    )
    log = (tmp_path / "minitg.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "minitg"), "serve", "--target", "all"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_installed_system_serves_and_stops(
    embedded_system: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    """`minitg serve` from the wheel answers /v1/health 200, serves /v1/openapi.json and the
    /docs page from its package data, and exits 0 on SIGTERM."""
    proc, port = embedded_system
    deadline = time.monotonic() + 30
    status = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as r:
                status = r.status
                break
        except OSError:
            time.sleep(0.2)
    log = (tmp_path / "minitg.log").read_text(errors="replace")
    assert 200 == status, log
    for path in ("/v1/openapi.json", "/docs", "/docs/docs.js"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            assert 200 == r.status, path
    proc.send_signal(signal.SIGTERM)
    assert 0 == proc.wait(20), log
