"""The whole system starts, reports healthy, is introspectable, and stops cleanly.

Both shapes are exercised as real subprocesses: embedded (``--target all`` on SQLite and
in-memory backends) and distributed (each role its own process on real PostgreSQL, Redis
and RabbitMQ).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from svckit.netports import free_port
from tests.e2e.processes import REPO, MinitgProcess, minitg, run_minitg, wait_http_ok
from tests.grpc_probe import health_status, reflected_services
from tests.harness import AMQP_URL, REDIS_URL, fresh_postgres_database

pytestmark = pytest.mark.e2e

GRACE = 5.0
SERVICES = {
    "auth": "minitg.auth.v1.AuthService",
    "chat": "minitg.chat.v1.ChatService",
    "presence": "minitg.presence.v1.PresenceService",
}


def _ports_env() -> dict[str, str]:
    env = {
        "MINITG_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "MINITG_METRICS_ADDR": f"127.0.0.1:{free_port()}",
    }
    for role in SERVICES:
        env[f"MINITG_{role.upper()}_LISTEN"] = f"127.0.0.1:{free_port()}"
    env["MINITG_SHUTDOWN_GRACE_SECONDS"] = str(GRACE)
    env["MINITG_HEALTH_INTERVAL_SECONDS"] = "1"
    return env


async def _assert_services_introspectable(env: dict[str, str]) -> None:
    for role, service in SERVICES.items():
        target = env[f"MINITG_{role.upper()}_LISTEN"]
        assert await health_status(target, service) == "SERVING"
        assert await health_status(target) == "SERVING"
        listed = await reflected_services(target)
        assert {
            service,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= listed


async def _assert_metrics(url: str, expected: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert expected in await resp.text()


def _stop_all(procs: list[MinitgProcess]) -> None:
    for p in reversed(procs):
        p.signal_term()
    for p in reversed(procs):
        code = p.terminate(GRACE + 5)
        assert code == 0, f"{p.name} exited {code}:\n{p.log_text()}"


async def test_embedded_all_in_one(tmp_path: Path) -> None:
    """`serve --target all` on embedded backends is healthy, introspectable, stops with 0."""
    env = _ports_env() | {
        "MINITG_DATA_DIR": str(tmp_path),
        "MINITG_DATABASE_URL": f"sqlite:///{tmp_path}/minitg.db",
    }
    proc = minitg(["serve", "--target", "all"], env, tmp_path / "all.log", "all")
    try:
        base = f"http://{env['MINITG_HTTP_ADDR']}"
        body = await wait_http_ok(f"{base}/v1/health", [proc])
        expected = {"auth": "up", "chat": "up", "presence": "up", "hot_state": "up", "broker": "up"}
        assert expected == body["checks"]
        await _assert_services_introspectable(env)
        await _assert_metrics(
            f"http://{env['MINITG_METRICS_ADDR']}/metrics", "minitg_http_requests_total"
        )
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as public:
            assert 404 == public.status  # never on the public HTTP port
    finally:
        _stop_all([proc])
    assert "minitg ready" in proc.log_text()


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    async with fresh_postgres_database() as url:
        yield url


async def test_distributed_each_role_its_own_process(tmp_path: Path, fresh_database: str) -> None:
    """Each role in its own process on PostgreSQL/Redis/RabbitMQ: healthy, then exits 0."""
    env = _ports_env() | {
        "MINITG_DATABASE_URL": fresh_database,
        "MINITG_REDIS_URL": REDIS_URL,
        "MINITG_BROKER_URL": AMQP_URL,
        "MINITG_DATA_DIR": str(tmp_path),
        "MINITG_INTERNAL_TOKEN": secrets.token_hex(16),
    }
    run_minitg(["keygen", "--dir", str(tmp_path / "jwt"), "--kid", "k1"], env)
    applied = run_minitg(["migrate", "up"], env)
    assert "auth: applied [1" in applied
    assert "pending" not in run_minitg(["migrate", "status"], env)
    procs: list[MinitgProcess] = []
    metrics_ports: dict[str, int] = {}
    try:
        for role in (*SERVICES, "gateway"):
            metrics_ports[role] = free_port()
            role_env = env | {
                "MINITG_METRICS_ADDR": f"127.0.0.1:{metrics_ports[role]}",
                "MINITG_POD_ID": f"{role}-{secrets.token_hex(3)}",
            }
            procs.append(
                minitg(["serve", "--target", role], role_env, tmp_path / f"{role}.log", role)
            )
        body = await wait_http_ok(f"http://{env['MINITG_HTTP_ADDR']}/v1/health", procs)
        assert set(body["checks"].values()) == {"up"}  # type: ignore[union-attr]
        await _assert_services_introspectable(env)
        for role in SERVICES:
            await _assert_metrics(
                f"http://127.0.0.1:{metrics_ports[role]}/metrics", "minitg_dependency_up"
            )
    finally:
        _stop_all(procs)


def test_split_target_on_memory_broker_is_refused() -> None:
    """A split role with an in-process broker exits 2 with one line naming the variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")}
    env |= {"MINITG_DATABASE_URL": "postgresql://db/x", "MINITG_REDIS_URL": "redis://r"}
    done = subprocess.run(
        [sys.executable, "-m", "svckit.cli", "serve", "--target", "chat"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "MINITG_BROKER_URL: memory:// is an embedded backend" in done.stderr
