"""Config is built from an environ mapping and fails fast naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from svckit.config import Config, HostPort
from svckit.envparse import ConfigError


def test_embedded_defaults() -> None:
    """With nothing set, the config is the embedded laptop shape on port 8080."""
    cfg = Config.from_environ({})
    assert cfg.database_url == "sqlite:///var/minitg.db"
    assert cfg.broker_url == "memory://"
    assert cfg.redis_url == "memory://"
    assert HostPort("0.0.0.0", 8080) == cfg.http_addr
    assert cfg.auto_migrate is True
    assert cfg.auth_target == "127.0.0.1:50051"
    assert (10_000, 20, 20) == cfg.gc_thresholds
    assert (700, 10, 5) == Config.from_environ({"MINITG_GC_THRESHOLDS": "700, 10,5"}).gc_thresholds


def test_postgres_disables_auto_migrate_by_default() -> None:
    """Distributed databases are migrated by `minitg migrate`, not at start-up."""
    cfg = Config.from_environ({"MINITG_DATABASE_URL": "postgresql://db/minitg"})
    assert cfg.auto_migrate is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MINITG_HTTP_ADDR", "8080"),
        ("MINITG_HTTP_ADDR", "host:99999"),
        ("MINITG_DATABASE_URL", "mysql://db"),
        ("MINITG_BROKER_URL", "kafka://x"),
        ("MINITG_REDIS_URL", "http://x"),
        ("MINITG_SHUTDOWN_GRACE_SECONDS", "-1"),
        ("MINITG_SHUTDOWN_GRACE_SECONDS", "soon"),
        ("MINITG_LOG_LEVEL", "LOUD"),
        ("MINITG_LOG_FORMAT", "xml"),
        ("MINITG_DB_POOL_MAX", "0"),
        ("MINITG_AUTO_MIGRATE", "maybe"),
        ("MINITG_BROKER_QUEUE_TYPE", "stream"),
        ("MINITG_POD_ID", "has space"),
        ("MINITG_GC_THRESHOLDS", "50000,20"),
        ("MINITG_GC_THRESHOLDS", "50000,0,20"),
        ("MINITG_GC_THRESHOLDS", "many,20,20"),
        ("MINITG_GC_FREEZE_SECONDS", "-1"),
        ("MINITG_GC_FULL_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    """A malformed setting raises ConfigError whose message starts with its name."""
    with pytest.raises(ConfigError) as caught:
        Config.from_environ({name: value})
    assert str(caught.value).startswith(f"{name}:")


def test_secret_from_file(tmp_path: Path) -> None:
    """A *_FILE variable (a Kubernetes Secret mount) supplies the URL."""
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:p@db/minitg\n")
    cfg = Config.from_environ({"MINITG_DATABASE_URL_FILE": str(secret)})
    assert cfg.database_url == "postgresql://u:p@db/minitg"


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    """An unreadable *_FILE path is reported with the _FILE variable's name."""
    with pytest.raises(ConfigError, match=r"^MINITG_BROKER_URL_FILE:"):
        Config.from_environ({"MINITG_BROKER_URL_FILE": str(tmp_path / "absent")})


def test_password_is_redacted_in_errors() -> None:
    """A rejected URL never echoes its password."""
    with pytest.raises(ConfigError) as caught:
        Config.from_environ({"MINITG_DATABASE_URL": "mysql://u:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("target", ["auth", "chat", "presence", "gateway"])
def test_split_target_refuses_memory_broker(target: str) -> None:
    """One role alone cannot share an in-process broker: refused with a clear message."""
    cfg = Config.from_environ(
        {"MINITG_DATABASE_URL": "postgresql://db/x", "MINITG_REDIS_URL": "redis://r"}
    )
    with pytest.raises(ConfigError, match=r"^MINITG_BROKER_URL: memory:// is an embedded"):
        cfg.check_target(target)


def test_split_target_refuses_sqlite() -> None:
    """A split auth role on SQLite is refused, naming MINITG_DATABASE_URL."""
    cfg = Config.from_environ({"MINITG_REDIS_URL": "redis://r"})
    with pytest.raises(ConfigError, match=r"^MINITG_DATABASE_URL:"):
        cfg.check_target("auth")


def test_distributed_split_target_is_accepted() -> None:
    """Every role accepts shared servers."""
    cfg = Config.from_environ(
        {
            "MINITG_DATABASE_URL": "postgresql://db/x",
            "MINITG_REDIS_URL": "redis://r",
            "MINITG_BROKER_URL": "amqp://guest:guest@mq/",
            "MINITG_INTERNAL_TOKEN": "s3cret",
        }
    )
    for target in ("all", "auth", "chat", "presence", "gateway"):
        cfg.check_target(target)


def test_hostport_ipv6_round_trip() -> None:
    """IPv6 listen addresses parse and print with brackets."""
    addr = HostPort.parse("[::1]:9000")
    assert HostPort("::1", 9000) == addr
    assert str(addr) == "[::1]:9000"


def test_split_target_needs_internal_token() -> None:
    """Split roles refuse the embedded default service credential."""
    cfg = Config.from_environ(
        {
            "MINITG_DATABASE_URL": "postgresql://db/x",
            "MINITG_REDIS_URL": "redis://r",
            "MINITG_BROKER_URL": "amqp://mq/",
        }
    )
    with pytest.raises(ConfigError, match=r"^MINITG_INTERNAL_TOKEN:"):
        cfg.check_target("gateway")


def test_heap_freezing_is_settled_by_target_unless_set() -> None:
    """A gateway freezes its heap every second by default; the all-in-one process does not
    (its chat and presence make garbage cycles per gRPC call); a set value always wins."""
    from svckit.runner import with_gc_defaults

    unset = Config.from_environ({})
    assert unset.gc_freeze_seconds is None
    assert 1.0 == with_gc_defaults(unset, "gateway").gc_freeze_seconds
    assert 0.0 == with_gc_defaults(unset, "all").gc_freeze_seconds
    chosen = Config.from_environ({"MINITG_GC_FREEZE_SECONDS": "0.25"})
    assert 0.25 == with_gc_defaults(chosen, "all").gc_freeze_seconds
    assert (
        0.0
        == with_gc_defaults(
            Config.from_environ({"MINITG_GC_FREEZE_SECONDS": "0"}), "gateway"
        ).gc_freeze_seconds
    )
