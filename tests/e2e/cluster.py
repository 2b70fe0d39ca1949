"""Whole minitg deployments as real processes: embedded (one) or distributed (many)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from svckit.netports import free_port
from tests.e2e.processes import MinitgProcess, minitg, run_minitg, wait_http_ok
from tests.harness import AMQP_URL, REDIS_URL, drop_redis_prefix, fresh_postgres_database

GRACE = 5.0


@dataclass
class Cluster:
    """The processes of one deployment and the gateway URLs clients may use."""

    shape: str
    procs: list[MinitgProcess] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    redis_prefix: str = ""

    def ws(self, index: int) -> str:
        return self.gateways[index % len(self.gateways)].replace("http://", "ws://")

    def proc(self, name: str) -> MinitgProcess:
        return next(p for p in self.procs if p.name == name)


def _common_env(tmp_path: Path) -> dict[str, str]:
    return {
        "MINITG_DATA_DIR": str(tmp_path),
        "MINITG_BCRYPT_COST": "4",
        "MINITG_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "MINITG_HEALTH_INTERVAL_SECONDS": "1",
        "MINITG_SESSION_CHECK_TTL_SECONDS": "1",
        "MINITG_COOKIE_SECURE": "false",
        "MINITG_PRESENCE_DEBOUNCE_SECONDS": "0",
        # Every process serves /metrics on its own address; any free port unless a test
        # sets one it scrapes (the default 0.0.0.0:9090 would collide between processes).
        "MINITG_METRICS_ADDR": "127.0.0.1:0",
    }


@asynccontextmanager
async def embedded_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    port = free_port()
    env = _common_env(tmp_path) | {
        "MINITG_HTTP_ADDR": f"127.0.0.1:{port}",
        "MINITG_DATABASE_URL": f"sqlite:///{tmp_path}/minitg.db",
        **{f"MINITG_{r}_LISTEN": f"127.0.0.1:{free_port()}" for r in ("AUTH", "CHAT", "PRESENCE")},
    }
    cluster = Cluster("embedded", gateways=[f"http://127.0.0.1:{port}"])
    cluster.procs.append(minitg(["serve"], env, tmp_path / "all.log", "all"))
    try:
        await wait_http_ok(f"{cluster.gateways[0]}/v1/health", cluster.procs)
        yield cluster
    finally:
        stop(cluster.procs)


@asynccontextmanager
async def distributed_cluster(
    tmp_path: Path,
    *,
    gateways: int = 2,
    chats: int = 2,
    broker_url: str = AMQP_URL,
    redis_url: str = REDIS_URL,
) -> AsyncIterator[Cluster]:
    """auth, presence, ``chats`` chat and ``gateways`` gateway processes on real servers."""
    prefix = f"e2e{secrets.token_hex(3)}:"
    async with fresh_postgres_database() as database_url:
        env = _common_env(tmp_path) | {
            "MINITG_DATABASE_URL": database_url,
            "MINITG_REDIS_URL": redis_url,
            "MINITG_BROKER_URL": broker_url,
            "MINITG_REDIS_PREFIX": prefix,
            "MINITG_INTERNAL_TOKEN": secrets.token_hex(16),
            "MINITG_JWT_KEYS_DIR": str(tmp_path / "jwt"),
            "MINITG_AUTH_LISTEN": f"127.0.0.1:{free_port()}",
            "MINITG_PRESENCE_LISTEN": f"127.0.0.1:{free_port()}",
        }
        run_minitg(["keygen", "--dir", str(tmp_path / "jwt")], env)
        run_minitg(["migrate", "up"], env)
        cluster = Cluster("distributed", redis_prefix=prefix)
        try:
            _start_distributed(cluster, env, tmp_path, gateways, chats)
            for url in cluster.gateways:
                await wait_http_ok(f"{url}/v1/health", cluster.procs)
            yield cluster
        finally:
            stop(cluster.procs)
            await drop_redis_prefix(prefix)


def _start_distributed(
    cluster: Cluster, env: dict[str, str], tmp_path: Path, gateways: int, chats: int
) -> None:
    def start(name: str, target: str, extra: dict[str, str]) -> None:
        role_env = env | {"MINITG_METRICS_ADDR": f"127.0.0.1:{free_port()}"} | extra
        cluster.procs.append(
            minitg(["serve", "--target", target], role_env, tmp_path / f"{name}.log", name)
        )

    start("auth", "auth", {})
    chat_addrs = [f"127.0.0.1:{free_port()}" for _ in range(chats)]
    for i, addr in enumerate(chat_addrs):
        start(f"chat{i}", "chat", {"MINITG_CHAT_LISTEN": addr})
    start("presence", "presence", {"MINITG_CHAT_TARGET": chat_addrs[0]})
    for i in range(gateways):
        port = free_port()
        extra = {
            "MINITG_HTTP_ADDR": f"127.0.0.1:{port}",
            "MINITG_POD_ID": f"gw{i}-{secrets.token_hex(3)}",
            "MINITG_CHAT_TARGET": chat_addrs[i % chats],
        }
        start(f"gateway{i}", "gateway", extra)
        cluster.gateways.append(f"http://127.0.0.1:{port}")


def stop(procs: list[MinitgProcess]) -> None:
    """SIGTERM everything (gateways first), wait, and check each exited 0."""
    for p in reversed(procs):
        p.signal_term()
    failures = []
    for p in reversed(procs):
        code = p.terminate(GRACE + 10)
        if code != 0:
            failures.append(f"{p.name} exited {code}:\n{p.log_text()[-3000:]}")
    assert not failures, "\n".join(failures)
