"""Process configuration: one frozen dataclass built from an environ mapping.

Every setting is a ``MINITG_*`` variable; secrets (the backend URLs) may instead be given as
``MINITG_*_FILE`` paths, which is how Kubernetes mounts Secrets. A bad value stops start-up
with one ``ConfigError`` line naming the variable. We parse by hand rather than with
environ-config or pydantic-settings: the whole parser is this file, it produces a plain
stdlib dataclass, and its error messages are exactly the ones operators read.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from svckit.envparse import (
    ConfigError,
    Env,
    LogFormat,
    bcrypt_cost,
    boolean,
    log_format,
    log_level,
    non_negative,
    nonempty,
    origins,
    pod_id,
    positive,
    positive_int,
    queue_type,
    ratio,
)
from svckit.tokens import MAX_TOKEN_LIFETIME_SECONDS

ROLES = ("auth", "chat", "presence", "gateway")
TARGETS = ("all", *ROLES)

# Which backends each role really opens; a split role is only checked for these.
ROLE_BACKENDS: Mapping[str, tuple[str, ...]] = {
    "auth": ("MINITG_DATABASE_URL", "MINITG_BROKER_URL", "MINITG_REDIS_URL"),
    "chat": ("MINITG_DATABASE_URL", "MINITG_BROKER_URL", "MINITG_REDIS_URL"),
    "presence": ("MINITG_DATABASE_URL", "MINITG_BROKER_URL", "MINITG_REDIS_URL"),
    "gateway": ("MINITG_BROKER_URL", "MINITG_REDIS_URL"),
}


INTERNAL_TOKEN_VARS = ("MINITG_INTERNAL_TOKEN", "MINITG_INTERNAL_TOKEN_FILE")


@dataclass(frozen=True, slots=True)
class HostPort:
    """A listen or dial address; port 0 asks the OS for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected host:port, got {text!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))


@dataclass(frozen=True, slots=True)
class RateRule:
    """``limit`` requests per ``window`` seconds, written ``LIMIT/SECONDS`` (e.g. ``5/60``)."""

    limit: int
    window: float

    @classmethod
    def parse(cls, text: str) -> RateRule:
        limit, sep, window = text.strip().partition("/")
        if not sep or not limit.isdigit() or int(limit) <= 0 or float(window) <= 0:
            raise ValueError(f"expected LIMIT/SECONDS like 5/60, got {text!r}")
        return cls(int(limit), float(window))


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Tokens, passwords and sessions (the auth service, and every token verifier)."""

    keys_dir: Path
    generate_keys: bool
    issuer: str
    audience: str
    access_ttl_seconds: int
    refresh_ttl_seconds: int
    refresh_grace_seconds: float
    bcrypt_cost: int
    session_check_ttl_seconds: float
    cookie_secure: bool


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Gateway rate limits, shared by every gateway pod through the hot-state store."""

    login_per_ip_email: RateRule
    login_per_ip: RateRule
    register_per_ip: RateRule
    refresh_per_ip: RateRule
    lookup_per_user: RateRule
    ws_upgrade_per_user: RateRule
    trust_forwarded_for: bool


@dataclass(frozen=True, slots=True)
class MessagingConfig:
    """Chats, messages, delivery, presence and the WebSocket (chat, presence, gateway)."""

    max_group_members: int
    max_text_chars: int
    edit_window_seconds: int
    update_retention_days: int
    outbox_poll_seconds: float
    member_cache_seconds: float
    registry_ttl_seconds: float
    heartbeat_seconds: float
    session_recheck_seconds: float
    typing_ttl_seconds: float
    watermark_flush_seconds: float
    presence_debounce_seconds: float
    max_frame_bytes: int
    max_in_flight_per_connection: int
    max_sends_in_flight: int
    send_batch_max: int
    send_batches_in_flight: int
    allowed_origins: tuple[str, ...]
    internal_token: str
    # False when no token was configured and a random one was made for this process: only
    # the roles inside this one process know it, so split roles refuse to start with it.
    internal_token_configured: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a minitg process reads from its environment."""

    database_url: str
    broker_url: str
    redis_url: str
    redis_prefix: str
    data_dir: Path
    http_addr: HostPort
    auth_listen: HostPort
    chat_listen: HostPort
    presence_listen: HostPort
    auth_target: str
    chat_target: str
    presence_target: str
    metrics_addr: HostPort | None
    pod_id: str
    log_level: str
    log_format: LogFormat
    shutdown_grace_seconds: float
    rpc_timeout_seconds: float
    health_interval_seconds: float
    db_pool_max: int
    broker_queue_type: Literal["classic", "quorum"]
    auto_migrate: bool
    otlp_endpoint: str
    trace_sample_ratio: float
    gc_thresholds: tuple[int, int, int]
    gc_freeze_seconds: float | None  # None: by target (runner.with_gc_defaults)
    gc_full_seconds: float
    auth: AuthConfig
    rates: RateLimits
    messaging: MessagingConfig

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the config from ``environ`` (``os.environ`` when None)."""
        raw = os.environ if environ is None else environ
        env = Env(raw)
        data_dir = env.get("MINITG_DATA_DIR", "var", Path)
        database_url = env.secret("MINITG_DATABASE_URL", f"sqlite:///{data_dir}/minitg.db")
        listens = {
            role: env.get(f"MINITG_{role.upper()}_LISTEN", f"127.0.0.1:{port}", HostPort.parse)
            for role, port in (("auth", 50051), ("chat", 50052), ("presence", 50053))
        }
        return cls(
            database_url=database_url,
            broker_url=env.secret("MINITG_BROKER_URL", "memory://"),
            redis_url=env.secret("MINITG_REDIS_URL", "memory://"),
            redis_prefix=env.get("MINITG_REDIS_PREFIX", "minitg:", nonempty),
            data_dir=data_dir,
            http_addr=env.get("MINITG_HTTP_ADDR", "0.0.0.0:8080", HostPort.parse),
            auth_listen=listens["auth"],
            chat_listen=listens["chat"],
            presence_listen=listens["presence"],
            auth_target=env.get("MINITG_AUTH_TARGET", str(listens["auth"]), nonempty),
            chat_target=env.get("MINITG_CHAT_TARGET", str(listens["chat"]), nonempty),
            presence_target=env.get("MINITG_PRESENCE_TARGET", str(listens["presence"]), nonempty),
            # Loopback by default: metrics name routes, pods and load, so a fresh server
            # shows them to no one; a deployment opens them to its scraper (k8s: 0.0.0.0).
            metrics_addr=env.get("MINITG_METRICS_ADDR", "127.0.0.1:9090", _optional_hostport),
            pod_id=env.get("MINITG_POD_ID", f"{socket.gethostname()}-{os.getpid()}", pod_id),
            log_level=env.get("MINITG_LOG_LEVEL", "INFO", log_level),
            log_format=env.get("MINITG_LOG_FORMAT", "console", log_format),
            shutdown_grace_seconds=env.get("MINITG_SHUTDOWN_GRACE_SECONDS", "10", positive),
            rpc_timeout_seconds=env.get("MINITG_RPC_TIMEOUT_SECONDS", "5", positive),
            health_interval_seconds=env.get("MINITG_HEALTH_INTERVAL_SECONDS", "5", positive),
            db_pool_max=env.get("MINITG_DB_POOL_MAX", "10", positive_int),
            broker_queue_type=env.get("MINITG_BROKER_QUEUE_TYPE", "classic", queue_type),
            auto_migrate=env.get(
                "MINITG_AUTO_MIGRATE",
                "true" if database_url.startswith("sqlite") else "false",
                boolean,
            ),
            otlp_endpoint=env.get("MINITG_OTLP_ENDPOINT", "", str.strip),
            trace_sample_ratio=env.get("MINITG_TRACE_SAMPLE_RATIO", "1", ratio),
            gc_thresholds=env.get("MINITG_GC_THRESHOLDS", "10000,20,20", gc_thresholds),
            gc_freeze_seconds=env.get("MINITG_GC_FREEZE_SECONDS", "", _optional_seconds),
            gc_full_seconds=env.get("MINITG_GC_FULL_SECONDS", "600", positive),
            auth=_auth_config(env, database_url),
            rates=_rate_limits(env),
            messaging=_messaging(env, any(name in raw for name in INTERNAL_TOKEN_VARS)),
        )

    def check_target(self, target: str) -> None:
        """Refuse combinations that cannot work, e.g. a split role on an in-process broker."""
        if target not in TARGETS:
            raise ConfigError(f"--target: expected one of {', '.join(TARGETS)}, got {target!r}")
        if target == "all":
            return
        urls = {
            "MINITG_DATABASE_URL": self.database_url,
            "MINITG_BROKER_URL": self.broker_url,
            "MINITG_REDIS_URL": self.redis_url,
        }
        for name in ROLE_BACKENDS[target]:
            if is_embedded_url(urls[name]):
                raise ConfigError(
                    f"{name}: {urls[name].split(':', 1)[0]}:// is an embedded backend that "
                    f"lives inside one process; --target {target} runs one role of a "
                    f"distributed system and needs a shared server (or use --target all)"
                )
        if not self.messaging.internal_token_configured:
            raise ConfigError(
                "MINITG_INTERNAL_TOKEN: split roles authenticate each other with a shared "
                "secret; set it (or MINITG_INTERNAL_TOKEN_FILE) to the same random value "
                "for every role"
            )


def _access_ttl(text: str) -> int:
    """Up to a day: verifiers refuse tokens living longer (svckit.tokens)."""
    value = positive_int(text)
    if value > MAX_TOKEN_LIFETIME_SECONDS:
        raise ValueError(f"expected at most {MAX_TOKEN_LIFETIME_SECONDS} seconds, got {text!r}")
    return value


def _auth_config(env: Env, database_url: str) -> AuthConfig:
    data_dir = env.get("MINITG_DATA_DIR", "var", Path)
    embedded = "true" if is_embedded_url(database_url) else "false"
    return AuthConfig(
        keys_dir=env.get("MINITG_JWT_KEYS_DIR", str(data_dir / "jwt"), Path),
        generate_keys=env.get("MINITG_JWT_GENERATE_KEYS", embedded, boolean),
        issuer=env.get("MINITG_JWT_ISSUER", "minitg", nonempty),
        audience=env.get("MINITG_JWT_AUDIENCE", "minitg", nonempty),
        access_ttl_seconds=env.get("MINITG_ACCESS_TOKEN_TTL_SECONDS", "900", _access_ttl),
        refresh_ttl_seconds=env.get(
            "MINITG_REFRESH_TOKEN_TTL_SECONDS", str(30 * 86400), positive_int
        ),
        refresh_grace_seconds=env.get("MINITG_REFRESH_GRACE_SECONDS", "10", non_negative),
        bcrypt_cost=env.get("MINITG_BCRYPT_COST", "12", bcrypt_cost),
        session_check_ttl_seconds=env.get("MINITG_SESSION_CHECK_TTL_SECONDS", "5", non_negative),
        cookie_secure=env.get("MINITG_COOKIE_SECURE", "true", boolean),
    )


def _rate_limits(env: Env) -> RateLimits:
    return RateLimits(
        login_per_ip_email=env.get("MINITG_RATE_LOGIN", "5/60", RateRule.parse),
        login_per_ip=env.get("MINITG_RATE_LOGIN_PER_IP", "30/60", RateRule.parse),
        register_per_ip=env.get("MINITG_RATE_REGISTER_PER_IP", "10/3600", RateRule.parse),
        refresh_per_ip=env.get("MINITG_RATE_REFRESH_PER_IP", "60/60", RateRule.parse),
        lookup_per_user=env.get("MINITG_RATE_USER_LOOKUP", "30/60", RateRule.parse),
        ws_upgrade_per_user=env.get("MINITG_RATE_WS_UPGRADE", "20/60", RateRule.parse),
        trust_forwarded_for=env.get("MINITG_TRUST_FORWARDED_FOR", "false", boolean),
    )


def _messaging(env: Env, token_configured: bool) -> MessagingConfig:
    return MessagingConfig(
        max_group_members=env.get("MINITG_MAX_GROUP_MEMBERS", "200", positive_int),
        max_text_chars=env.get("MINITG_MAX_TEXT_CHARS", "4096", positive_int),
        edit_window_seconds=env.get("MINITG_EDIT_WINDOW_SECONDS", str(48 * 3600), positive_int),
        update_retention_days=env.get("MINITG_UPDATE_RETENTION_DAYS", "30", positive_int),
        outbox_poll_seconds=env.get("MINITG_OUTBOX_POLL_SECONDS", "0.5", positive),
        member_cache_seconds=env.get("MINITG_MEMBER_CACHE_SECONDS", "60", non_negative),
        registry_ttl_seconds=env.get("MINITG_REGISTRY_TTL_SECONDS", "90", positive),
        heartbeat_seconds=env.get("MINITG_HEARTBEAT_SECONDS", "30", positive),
        session_recheck_seconds=env.get("MINITG_SESSION_RECHECK_SECONDS", "300", positive),
        typing_ttl_seconds=env.get("MINITG_TYPING_TTL_SECONDS", "6", positive),
        watermark_flush_seconds=env.get("MINITG_WATERMARK_FLUSH_SECONDS", "0.05", positive),
        presence_debounce_seconds=env.get("MINITG_PRESENCE_DEBOUNCE_SECONDS", "2", non_negative),
        max_frame_bytes=env.get("MINITG_MAX_FRAME_BYTES", str(64 * 1024), positive_int),
        max_in_flight_per_connection=env.get("MINITG_MAX_IN_FLIGHT", "64", positive_int),
        max_sends_in_flight=env.get("MINITG_MAX_SENDS_IN_FLIGHT", "1024", positive_int),
        send_batch_max=env.get("MINITG_SEND_BATCH_MAX", "100", _batch_size),
        send_batches_in_flight=env.get("MINITG_SEND_BATCHES_IN_FLIGHT", "1", positive_int),
        allowed_origins=env.get("MINITG_ALLOWED_ORIGINS", "", origins),
        # Unset: a fresh random secret per process, so no well-known value opens the
        # internal RPCs of an all-in-one process to every local program.
        internal_token=env.secret_text("MINITG_INTERNAL_TOKEN", secrets.token_urlsafe(32)),
        internal_token_configured=token_configured,
    )


def _batch_size(text: str) -> int:
    value = positive_int(text)
    if value > 500:
        raise ValueError("must be at most 500 (the chat service's RelaySends limit)")
    return value


def is_embedded_url(url: str) -> bool:
    """True for the in-process backends (SQLite file, ``memory://``)."""
    return urlsplit(url).scheme in {"sqlite", "memory"}


def _optional_hostport(text: str) -> HostPort | None:
    return HostPort.parse(text) if text.strip() else None


def _optional_seconds(text: str) -> float | None:
    return non_negative(text) if text.strip() else None


def gc_thresholds(text: str) -> tuple[int, int, int]:
    """Three positive integers, ``gc.set_threshold``'s arguments: ``"10000,20,20"``."""
    parts = [positive_int(part.strip()) for part in text.split(",")]
    if len(parts) != 3:
        raise ValueError(f"expected three comma-separated positive integers, got {text!r}")
    return parts[0], parts[1], parts[2]
