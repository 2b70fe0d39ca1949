"""An in-process minitg for api tests: real roles on 127.0.0.1:0, either backend shape.

``running_system("embedded")`` uses a temp SQLite directory and in-memory bus and state;
``running_system("distributed")`` uses a fresh PostgreSQL database, a private Redis key
prefix and the real RabbitMQ. Roles are started exactly as ``minitg serve`` starts them
(``svckit.runner.make_role``), so what a test sees is what a process would serve.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis.asyncio as redis
from grpc import aio
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from svckit.backends import EmbeddedBackends
from svckit.config import Config
from svckit.grpc_server import open_channel
from svckit.lifecycle import Role
from svckit.runner import make_role, stop_roles, with_bound_address

POSTGRES_URL = os.environ.get(
    "MINITG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MINITG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("MINITG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SHAPES = ("embedded", "distributed")


@dataclass
class TestUser:
    """A registered user and the credentials of one of their sessions."""

    id: int
    email: str
    password: str
    session_id: str
    access_token: str
    refresh_token: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.access_token}"),)


@dataclass
class System:
    """A running set of roles and ways to reach them."""

    shape: str
    cfg: Config
    roles: dict[str, Role]
    channels: list[aio.Channel] = field(default_factory=list)
    # The in-process bus and key space the roles share (used by the embedded shape), so a
    # test can subscribe as a fake gateway pod or write the connection registry.
    embedded: EmbeddedBackends = field(default_factory=EmbeddedBackends)

    @property
    def http_url(self) -> str:
        port = getattr(self.roles["gateway"], "port", 0)
        return f"http://127.0.0.1:{port}"

    def channel(self, role: str) -> aio.Channel:
        channel = open_channel(getattr(self.cfg, f"{role}_target"), timeout=10)
        self.channels.append(channel)
        return channel

    async def register(self, name: str = "", **fields: str) -> TestUser:
        """Register a fresh user through AuthService and return its credentials."""
        stub = auth_service_pb2_grpc.AuthServiceStub(self.channel("auth"))
        email = fields.get("email") or f"{name or 'user'}-{secrets.token_hex(4)}@example.org"
        password = fields.get("password", "correct horse battery")
        reply = await stub.Register(
            auth_service_pb2.RegisterRequest(
                email=email,
                password=password,
                display_name=fields.get("display_name", name or "Test User"),
                device_name=fields.get("device_name", "pytest"),
            )
        )
        return TestUser(
            reply.user.id, email, password, reply.session_id,
            reply.tokens.access_token, reply.tokens.refresh_token,
        )  # fmt: skip


def base_env(shape: str, tmp_path: Path) -> dict[str, str]:
    """The environment of an in-process system of ``shape`` (fast bcrypt for tests)."""
    env = {
        "MINITG_HTTP_ADDR": "127.0.0.1:0",
        "MINITG_AUTH_LISTEN": "127.0.0.1:0",
        "MINITG_CHAT_LISTEN": "127.0.0.1:0",
        "MINITG_PRESENCE_LISTEN": "127.0.0.1:0",
        "MINITG_DATA_DIR": str(tmp_path),
        "MINITG_BCRYPT_COST": "4",
        "MINITG_HEALTH_INTERVAL_SECONDS": "1",
        "MINITG_SHUTDOWN_GRACE_SECONDS": "2",
        "MINITG_COOKIE_SECURE": "false",
        "MINITG_POD_ID": f"pod-{secrets.token_hex(4)}",
        # The auth service limits registrations per client IP, gRPC ones included, and
        # every test registers its users from 127.0.0.1.
        "MINITG_RATE_REGISTER_PER_IP": "100000/3600",
    }
    if shape == "distributed":
        env |= {
            "MINITG_REDIS_URL": REDIS_URL,
            "MINITG_BROKER_URL": AMQP_URL,
            "MINITG_REDIS_PREFIX": f"t{secrets.token_hex(4)}:",
            "MINITG_AUTO_MIGRATE": "true",
            "MINITG_JWT_GENERATE_KEYS": "true",
        }
    return env


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new empty PostgreSQL database, dropped afterwards."""
    name = f"minitg_t_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def drop_redis_prefix(prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (a test's private key space)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def running_system(
    shape: str,
    tmp_path: Path,
    roles: Sequence[str] = ("auth", "chat", "presence", "gateway"),
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[System]:
    """Start ``roles`` in this process on ``shape`` backends; stop them afterwards."""
    full_env = base_env(shape, tmp_path) | dict(env or {})
    if shape == "distributed":
        async with fresh_postgres_database() as url:
            full_env.setdefault("MINITG_DATABASE_URL", url)
            try:
                async with _started(full_env, roles, shape) as system:
                    yield system
            finally:
                await drop_redis_prefix(full_env["MINITG_REDIS_PREFIX"])
    else:
        async with _started(full_env, roles, shape) as system:
            yield system


@asynccontextmanager
async def _started(env: dict[str, str], roles: Sequence[str], shape: str) -> AsyncIterator[System]:
    cfg = Config.from_environ(env)
    embedded = EmbeddedBackends()
    started: dict[str, Role] = {}
    try:
        for name in roles:
            role = make_role(name, cfg, embedded)
            await role.start()
            started[name] = role
            cfg = with_bound_address(cfg, role)
        system = System(shape, cfg, started, embedded=embedded)
        try:
            yield system
        finally:
            for channel in system.channels:
                await channel.close(None)
    finally:
        await stop_roles(list(started.values()), 2.0)
