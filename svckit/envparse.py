"""Parsing ``MINITG_*`` values: each parser raises ValueError with a message for people.

``Env`` turns those into ``ConfigError`` lines that start with the variable's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
LogFormat = Literal["json", "console"]

# Accepted URL schemes per variable: (distributed backends, embedded backends).
URL_SCHEMES = {
    "MINITG_DATABASE_URL": ({"postgresql", "postgres"}, {"sqlite"}),
    "MINITG_BROKER_URL": ({"amqp", "amqps"}, {"memory"}),
    "MINITG_REDIS_URL": ({"redis", "rediss"}, {"memory"}),
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Reads variables from a mapping, turning parse failures into ConfigError."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, default: str, parse: Callable[[str], T]) -> T:
        raw = self._environ.get(name, default)
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def secret_text(self, name: str, default: str) -> str:
        """A secret string given directly or through ``NAME_FILE`` (no scheme check)."""
        file_name = f"{name}_FILE"
        if file_name in self._environ:
            path = Path(self._environ[file_name])
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{file_name}: cannot read {path}: {exc.strerror}") from None
        value = self._environ.get(name, default).strip()
        if not value:
            raise ConfigError(f"{name}: must not be empty")
        return value

    def secret(self, name: str, default: str) -> str:
        """A URL given directly or through ``NAME_FILE``; its scheme is checked."""
        file_name = f"{name}_FILE"
        if file_name in self._environ:
            path = Path(self._environ[file_name])
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{file_name}: cannot read {path}: {exc.strerror}") from None
        else:
            value = self._environ.get(name, default).strip()
        scheme = urlsplit(value).scheme
        distributed, embedded = URL_SCHEMES[name]
        if scheme not in distributed | embedded:
            allowed = ", ".join(f"{s}://" for s in sorted(distributed | embedded))
            raise ConfigError(f"{name}: unsupported scheme in {redact(value)!r}; use {allowed}")
        return value


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def pod_id(text: str) -> str:
    cleaned = text.strip()
    if not cleaned or any(c.isspace() for c in cleaned) or len(cleaned) > 200:
        raise ValueError(f"expected a short identifier without spaces, got {text!r}")
    return cleaned


def log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {text!r}")
    return level


def log_format(text: str) -> LogFormat:
    value = text.strip().lower()
    if value == "json":
        return "json"
    if value == "console":
        return "console"
    raise ValueError(f"expected json or console, got {text!r}")


def queue_type(text: str) -> Literal["classic", "quorum"]:
    value = text.strip().lower()
    if value == "classic":
        return "classic"
    if value == "quorum":
        return "quorum"
    raise ValueError(f"expected classic or quorum, got {text!r}")


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"expected zero or a positive number, got {text!r}")
    return value


def bcrypt_cost(text: str) -> int:
    value = int(text)
    if not 4 <= value <= 16:
        raise ValueError(f"expected a bcrypt cost from 4 to 16, got {text!r}")
    return value


def ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"expected a ratio from 0 to 1, got {text!r}")
    return value


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def origins(text: str) -> tuple[str, ...]:
    """Comma-separated origins allowed to open a WebSocket from a browser; '*' allows any."""
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
