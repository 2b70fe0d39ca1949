"""Start the system under test as real processes, and always clean it up.

Three shapes: ``distributed`` (auth, presence, ``chat_procs`` chat and ``gateways``
gateway processes on a fresh PostgreSQL database, a private Redis prefix and RabbitMQ, as
tests/e2e/cluster.py does), ``embedded`` (one ``serve --target all`` on SQLite) and
``control`` (load/control.py: raw aiohttp fan-out). Every process gets a raised
RLIMIT_NOFILE by inheritance (``start_system`` raises ours, soft and hard, first: a
preexec_fn is unsafe next to the threads of asyncio.to_thread). Only loopback addresses
are used; ``stop()`` sends SIGTERM, waits, kills what is stuck, drops the database and
deletes the Redis keys.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as redis

from load.procstat import raise_nofile
from svckit.netports import free_port

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("LOAD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("LOAD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
GRACE = 5.0

# The bench measures messaging, not bcrypt or our abuse limits: cheap hashes (cost 4) and
# limits far above what the generator does from one loopback address. Said in every report.
BENCH_ENV = {
    "MINITG_BCRYPT_COST": "4",
    "MINITG_RATE_REGISTER_PER_IP": "100000000/60",
    "MINITG_RATE_LOGIN_PER_IP": "100000000/60",
    "MINITG_RATE_WS_UPGRADE": "100000000/60",
    "MINITG_ACCESS_TOKEN_TTL_SECONDS": "7200",
    "MINITG_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    "MINITG_COOKIE_SECURE": "false",
    "MINITG_LOG_FORMAT": "json",
}


def env_pairs(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` items (``--server-env``) as a mapping; only MINITG_* keys count."""
    pairs = [item.partition("=") for item in items]
    return {key: value for key, _, value in pairs if key.startswith("MINITG_")}


@dataclass
class Proc:
    label: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class System:
    """A running deployment: its gateways' base URLs and its processes by label."""

    shape: str
    gateways: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="minitg-load-")))
    database: str = ""
    prefix: str = ""
    env: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # every process's /metrics URL

    def pids(self) -> dict[str, int]:
        return {p.label: p.popen.pid for p in self.procs}

    def metric_pages(self) -> dict[str, str]:
        """Every server's /metrics URL by label (each on its MINITG_METRICS_ADDR, never the
        HTTP port; the control has none)."""
        return dict(self.metrics)

    def gateway_metric_pages(self) -> list[str]:
        """The /metrics URLs of the processes that run a gateway."""
        return [url for label, url in self.metrics.items() if label.startswith(("gateway", "all"))]

    def gateway_pids(self) -> dict[str, int]:
        return {p.label: p.popen.pid for p in self.procs if p.label.startswith(("gateway", "all"))}

    def start(self, label: str, args: list[str], extra: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")}
        env |= self.env | extra
        log = self.logs / f"{label}.log"
        with log.open("wb") as handle:
            popen = subprocess.Popen(
                [sys.executable, *args], cwd=REPO, env=env, stdout=handle,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append(Proc(label, popen, log))

    async def wait_healthy(self, timeout: float = 60) -> None:
        """Poll every gateway's health until 200; fail with the logs when a process died."""
        deadline = time.monotonic() + timeout
        path = "/healthz" if self.shape == "control" else "/v1/health"
        async with aiohttp.ClientSession() as session:
            for url in self.gateways:
                while True:
                    self._check_alive()
                    try:
                        async with session.get(url + path) as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} not healthy in {timeout} s; logs: {self.logs}")
                    await asyncio.sleep(0.2)

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{proc.label} exited {proc.popen.returncode}:\n{tail}")

    async def stop(self) -> None:
        """SIGTERM (gateways first), wait, kill the stuck; drop the database and keys."""
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                await asyncio.to_thread(proc.popen.wait, GRACE + 10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                await asyncio.to_thread(proc.popen.wait, 5)
        if self.database:
            await _drop_database(self.database)
        if self.prefix:
            await _drop_prefix(self.prefix)
        codes = [proc.popen.returncode for proc in self.procs]
        if os.environ.get("LOAD_KEEP_LOGS") or any(c not in (0, -signal.SIGTERM) for c in codes):
            print(f"server logs: {self.logs} (exit codes {codes})", file=sys.stderr)
        else:
            shutil.rmtree(self.logs, ignore_errors=True)


async def start_system(
    shape: str,
    *,
    gateways: int = 1,
    chat_procs: int = 1,
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
) -> System:
    """Start ``shape`` and wait until every gateway is healthy (stopped again on failure)."""
    raise_nofile(65_536)  # soft and hard: every process we start inherits it
    system = System(shape)
    system.env = BENCH_ENV | {"MINITG_LOG_LEVEL": log_level, "MINITG_DATA_DIR": str(system.logs)}
    system.env |= extra_env or {}
    try:
        if shape == "distributed":
            await _start_distributed(system, gateways, chat_procs)
        elif shape == "embedded":
            _start_embedded(system)
        elif shape == "control":
            port = free_port()
            system.start("control", ["-m", "load.control", "--port", str(port)], {})
            system.gateways.append(f"http://127.0.0.1:{port}")
        else:
            raise ValueError(f"unknown shape {shape!r}")
        await system.wait_healthy()
    except BaseException:
        await system.stop()
        raise
    return system


def _start_embedded(system: System) -> None:
    port, metrics_port = free_port(), free_port()
    system.metrics["all"] = f"http://127.0.0.1:{metrics_port}/metrics"
    system.start("all", ["-m", "svckit.cli", "serve", "--target", "all"], {
        "MINITG_HTTP_ADDR": f"127.0.0.1:{port}",
        "MINITG_METRICS_ADDR": f"127.0.0.1:{metrics_port}",
        "MINITG_DATABASE_URL": f"sqlite:///{system.logs}/minitg.db",
        **{f"MINITG_{r}_LISTEN": f"127.0.0.1:{free_port()}" for r in ("AUTH", "CHAT", "PRESENCE")},
    })  # fmt: skip
    system.gateways.append(f"http://127.0.0.1:{port}")


async def _start_distributed(system: System, gateways: int, chat_procs: int) -> None:
    system.database = f"minitg_load_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{system.database}"')
    finally:
        await admin.close()
    system.prefix = f"load{secrets.token_hex(3)}:"
    system.env |= {
        "MINITG_DATABASE_URL": POSTGRES_URL.rsplit("/", 1)[0] + f"/{system.database}",
        "MINITG_REDIS_URL": REDIS_URL,
        "MINITG_BROKER_URL": AMQP_URL,
        "MINITG_REDIS_PREFIX": system.prefix,
        "MINITG_INTERNAL_TOKEN": secrets.token_hex(16),
        "MINITG_JWT_KEYS_DIR": str(system.logs / "jwt"),
        "MINITG_AUTH_LISTEN": f"127.0.0.1:{free_port()}",
        "MINITG_PRESENCE_LISTEN": f"127.0.0.1:{free_port()}",
    }
    await _run_cli(system, ["keygen", "--dir", str(system.logs / "jwt")])
    await _run_cli(system, ["migrate", "up"])
    cli = ["-m", "svckit.cli", "serve", "--target"]

    def role(label: str, target: str, extra: dict[str, str]) -> None:
        port = free_port()
        system.metrics[label] = f"http://127.0.0.1:{port}/metrics"
        system.start(label, [*cli, target], {"MINITG_METRICS_ADDR": f"127.0.0.1:{port}"} | extra)

    role("auth", "auth", {})
    chats = [f"127.0.0.1:{free_port()}" for _ in range(chat_procs)]
    for i, addr in enumerate(chats):
        role(f"chat{i}", "chat", {"MINITG_CHAT_LISTEN": addr})
    role("presence", "presence", {"MINITG_CHAT_TARGET": chats[0]})
    for i in range(gateways):
        port = free_port()
        role(f"gateway{i}", "gateway", {
            "MINITG_HTTP_ADDR": f"127.0.0.1:{port}",
            "MINITG_POD_ID": f"load-gw{i}-{secrets.token_hex(3)}",
            "MINITG_CHAT_TARGET": chats[i % chat_procs],
        })  # fmt: skip
        system.gateways.append(f"http://127.0.0.1:{port}")


async def _run_cli(system: System, args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")} | system.env
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "svckit.cli", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"minitg {' '.join(args)} failed: {output.decode(errors='replace')}")


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _drop_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
    finally:
        await client.aclose()
