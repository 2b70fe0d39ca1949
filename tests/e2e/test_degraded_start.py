"""Roles start degraded while a dependency is down and heal without a restart (issue 15
items 3 and 5).

Each test runs its own RabbitMQ (tests/e2e/private_broker.py) or its own PostgreSQL
database, never stopping the shared servers other tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from svckit.adapters.amqp import AmqpBus
from svckit.netports import free_port
from svckit.ports import Delivery, Unroutable
from tests.e2e.cluster import _common_env, distributed_cluster
from tests.e2e.private_broker import PrivateBroker
from tests.e2e.processes import REPO, minitg, run_minitg
from tests.e2e.test_messaging import _direct_pair, _drain
from tests.grpc_probe import health_status
from tests.harness import AMQP_URL, REDIS_URL, drop_redis_prefix, fresh_postgres_database
from tgclient import MinitgClient

pytestmark = pytest.mark.e2e


async def _eventually(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``probe`` every 0.2 s until it is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


async def _health(target: str, service: str) -> str:
    try:
        return await health_status(target, service)
    except Exception as exc:  # not listening yet
        return repr(exc)


async def test_chat_starts_without_broker_and_sends_flow_when_it_returns(
    tmp_path: Path,
) -> None:
    """Chat started while RabbitMQ is down serves, acknowledges sends, and they reach the
    recipient live once RabbitMQ is back, with no process restarted."""
    broker = PrivateBroker()
    broker.start()
    try:
        async with distributed_cluster(
            tmp_path, gateways=1, chats=1, broker_url=broker.url
        ) as cluster:
            ann, bob, chat = await _direct_pair(cluster)
            old_chat = cluster.proc("chat0")
            await asyncio.to_thread(broker.stop)
            old_chat.terminate(30)
            cluster.procs.remove(old_chat)
            new_chat = minitg(
                ["serve", "--target", "chat"], old_chat.env, tmp_path / "chat0b.log", "chat0b"
            )
            cluster.procs.append(new_chat)
            chat_addr = old_chat.env["MINITG_CHAT_LISTEN"]
            service = "minitg.chat.v1.ChatService"

            async def serving() -> bool:
                assert new_chat.proc.poll() is None, new_chat.log_text()
                return "SERVING" == await _health(chat_addr, service)

            await _eventually(serving, 30, "chat SERVING while the broker is down")
            async with (
                MinitgClient(cluster.ws(0), ann.access_token) as a,
                MinitgClient(cluster.ws(0), bob.access_token) as b,
            ):
                await _drain(b)
                ack = await a.send_text(chat["id"], "sent while RabbitMQ is down")
                await asyncio.to_thread(broker.start)
                update = await b.next_update(60)
                assert ack.message_id == update.new_message.message.id  # type: ignore[attr-defined]
                assert 0 == b.reconnects, "delivered live, not by a reconnect's catch-up"
            assert new_chat.proc.poll() is None
    finally:
        await asyncio.to_thread(broker.remove)


async def test_gateway_starts_without_broker_and_delivers_when_it_returns(
    tmp_path: Path,
) -> None:
    """A gateway started while RabbitMQ is down answers 503 naming the broker, then 200
    and live deliveries once RabbitMQ is back, with no process restarted."""
    broker = PrivateBroker()
    broker.start()
    try:
        async with distributed_cluster(
            tmp_path, gateways=1, chats=1, broker_url=broker.url
        ) as cluster:
            ann, bob, chat = await _direct_pair(cluster)
            old = cluster.proc("gateway0")
            await asyncio.to_thread(broker.stop)
            old.terminate(30)
            cluster.procs.remove(old)
            gateway = minitg(
                ["serve", "--target", "gateway"], old.env, tmp_path / "gw0b.log", "gateway0b"
            )
            cluster.procs.append(gateway)
            health = f"{cluster.gateways[0]}/v1/health"

            async def broker_check(expected: str, status: int) -> bool:
                assert gateway.proc.poll() is None, gateway.log_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with aiohttp.ClientSession() as session, session.get(health) as resp:
                        body = await resp.json()
                        return status == resp.status and expected == body["checks"]["broker"]
                return False

            await _eventually(lambda: broker_check("down", 503), 30, "gateway up, broker down")
            await asyncio.to_thread(broker.start)
            await _eventually(lambda: broker_check("up", 200), 60, "gateway healthy again")
            async with (
                MinitgClient(cluster.ws(0), ann.access_token) as a,
                MinitgClient(cluster.ws(0), bob.access_token) as b,
            ):
                await _drain(b)
                ack = await a.send_text(chat["id"], "after the broker came back")
                update = await b.next_update(30)
                assert ack.message_id == update.new_message.message.id  # type: ignore[attr-defined]
    finally:
        await asyncio.to_thread(broker.remove)


async def test_bus_opened_while_broker_down_subscribes_when_it_comes_up() -> None:
    """A bus opened while RabbitMQ is down reports down, then consumes once it is up."""
    broker = PrivateBroker()
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handle(delivery: Delivery) -> None:
        got.put_nowait(delivery)

    bus = await AmqpBus.open(broker.url, retry_seconds=0.5)
    publisher: AmqpBus | None = None
    try:
        assert False is await bus.ping()
        subscription = await bus.subscribe("degraded-test", "degraded-key", handle)
        await asyncio.to_thread(broker.start)
        await _eventually(bus.ping, 30, "bus connected after the broker started")
        publisher = await AmqpBus.connect(broker.url)

        async def published() -> bool:
            assert publisher is not None
            with contextlib.suppress(Unroutable):  # bound a moment after the connect
                await publisher.publish("degraded-key", b"hello")
                return True
            return False

        await _eventually(published, 15, "the queue bound")
        assert b"hello" == (await asyncio.wait_for(got.get(), 15)).body
        await subscription.cancel()
    finally:
        await bus.close()
        if publisher is not None:
            await publisher.close()
        await asyncio.to_thread(broker.remove)


async def test_service_on_unmigrated_database_is_not_ready_until_migrated(
    tmp_path: Path,
) -> None:
    """Auth on an empty database reports NOT_SERVING (the gateway's health: auth down)
    until `minitg migrate up` runs, then SERVING without a restart."""
    async with fresh_postgres_database() as database_url:
        http = f"127.0.0.1:{free_port()}"
        env = _common_env(tmp_path) | {
            "MINITG_DATABASE_URL": database_url,
            "MINITG_REDIS_URL": REDIS_URL,
            "MINITG_BROKER_URL": AMQP_URL,
            "MINITG_REDIS_PREFIX": f"e2e{secrets.token_hex(3)}:",
            "MINITG_INTERNAL_TOKEN": secrets.token_hex(16),
            "MINITG_JWT_KEYS_DIR": str(tmp_path / "jwt"),
            "MINITG_AUTH_LISTEN": f"127.0.0.1:{free_port()}",
            "MINITG_HTTP_ADDR": http,
        }
        run_minitg(["keygen", "--dir", str(tmp_path / "jwt")], env)
        auth = minitg(["serve", "--target", "auth"], env, tmp_path / "auth.log", "auth")
        gateway = minitg(["serve", "--target", "gateway"], env, tmp_path / "gw.log", "gateway")
        addr, service = env["MINITG_AUTH_LISTEN"], "minitg.auth.v1.AuthService"

        async def auth_is(expected: str) -> bool:
            assert auth.proc.poll() is None, auth.log_text()
            return expected == await _health(addr, service)

        async def gateway_sees_auth(expected: str) -> bool:
            assert gateway.proc.poll() is None, gateway.log_text()
            with contextlib.suppress(aiohttp.ClientError):
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://{http}/v1/health") as resp,
                ):
                    body = await resp.json()
                    return 503 == resp.status and expected == body["checks"]["auth"]
            return False

        try:
            await _eventually(lambda: auth_is("NOT_SERVING"), 30, "auth NOT_SERVING")
            await _eventually(lambda: gateway_sees_auth("down"), 30, "gateway: auth down")
            await asyncio.sleep(2.5)  # more health rounds: still not ready
            assert "NOT_SERVING" == await _health(addr, service)
            await asyncio.to_thread(run_minitg, ["migrate", "up"], env)
            await _eventually(lambda: auth_is("SERVING"), 30, "auth SERVING after migrate")
            await _eventually(lambda: gateway_sees_auth("up"), 30, "gateway: auth up")
            assert "auth: schema is down" in auth.log_text()
        finally:
            codes = [gateway.terminate(30), auth.terminate(30)]
            await drop_redis_prefix(env["MINITG_REDIS_PREFIX"])
        assert [0, 0] == codes, auth.log_text() + gateway.log_text()


class _TcpForwarder:
    """A port that forwards to the shared PostgreSQL only while ``up``: the test's own
    "database outage", without touching the server other tests use."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port, self._target = port, target_port
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (userinfo kept)."""
    parsed = urlsplit(url)
    user = parsed.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return urlunsplit(parsed._replace(netloc=netloc))


@pytest.mark.parametrize("dependency", ["MINITG_DATABASE_URL", "MINITG_REDIS_URL"])
async def test_service_started_while_a_backend_is_down_becomes_ready_when_it_returns(
    tmp_path: Path, dependency: str
) -> None:
    """Auth started while PostgreSQL (or Redis) is unreachable serves NOT_SERVING, then
    SERVING once it answers, without a restart."""
    async with fresh_postgres_database() as database_url:
        env = _common_env(tmp_path) | {
            "MINITG_DATABASE_URL": database_url,
            "MINITG_REDIS_URL": REDIS_URL,
            "MINITG_BROKER_URL": AMQP_URL,
            "MINITG_REDIS_PREFIX": f"e2e{secrets.token_hex(3)}:",
            "MINITG_INTERNAL_TOKEN": secrets.token_hex(16),
            "MINITG_JWT_KEYS_DIR": str(tmp_path / "jwt"),
            "MINITG_AUTH_LISTEN": f"127.0.0.1:{free_port()}",
        }
        run_minitg(["keygen", "--dir", str(tmp_path / "jwt")], env)
        run_minitg(["migrate", "up"], env)
        real = urlsplit(env[dependency]).port
        assert real is not None
        forwarder = _TcpForwarder(free_port(), real)
        env[dependency] = _via(env[dependency], forwarder.port)
        auth = minitg(["serve", "--target", "auth"], env, tmp_path / "auth.log", "auth")
        addr, service = env["MINITG_AUTH_LISTEN"], "minitg.auth.v1.AuthService"

        async def auth_is(expected: str) -> bool:
            assert auth.proc.poll() is None, auth.log_text()
            return expected == await _health(addr, service)

        try:
            await _eventually(lambda: auth_is("NOT_SERVING"), 30, "auth NOT_SERVING")
            await forwarder.up()
            await _eventually(lambda: auth_is("SERVING"), 30, "auth SERVING once it is up")
        finally:
            code = auth.terminate(30)
            await forwarder.close()
            await drop_redis_prefix(env["MINITG_REDIS_PREFIX"])
        assert 0 == code, auth.log_text()


async def test_migrate_check_wait_returns_once_migrated(tmp_path: Path) -> None:
    """`minitg migrate check` says 1 on an unmigrated schema; `--wait` (the Kubernetes init
    container) blocks until `minitg migrate up` has run, then exits 0."""
    async with fresh_postgres_database() as database_url:
        env = {"MINITG_DATABASE_URL": database_url}
        once = await asyncio.to_thread(_cli, ["migrate", "check", "--service", "chat"], env)
        assert 1 == once.returncode, once.stdout + once.stderr
        waiter = await asyncio.to_thread(
            _cli_background, ["migrate", "check", "--wait", "--service", "chat"], env
        )
        try:
            await asyncio.sleep(3.0)
            assert waiter.poll() is None, waiter.communicate()[0]
            await asyncio.to_thread(run_minitg, ["migrate", "up", "--service", "chat"], env)
            out, _ = await asyncio.to_thread(waiter.communicate, timeout=30)
        finally:
            if waiter.poll() is None:
                waiter.kill()
        assert 0 == waiter.returncode, out
        assert "waiting for migrations: chat: at version 0 of" in out


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MINITG_")} | extra


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "svckit.cli", *args]
    return subprocess.run(
        command, cwd=REPO, env=_clean_env(env), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def _cli_background(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "svckit.cli", *args]
    return subprocess.Popen(
        command, cwd=REPO, env=_clean_env(env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
