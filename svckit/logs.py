"""Structured logging: JSON lines in production, readable lines in a terminal.

A request id lives in a contextvar so every log line written while handling one
WebSocket frame, gRPC call or AMQP delivery carries it without being passed around.
Extra structured fields go through ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import secrets
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
role_var: contextvars.ContextVar[str] = contextvars.ContextVar("role", default="")

REQUEST_ID_HEADER = "x-request-id"


_ID_PREFIX = secrets.token_hex(4)  # this process's, so ids stay unique across processes
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A fresh 16-hex-digit request id: a random per-process prefix and a counter (a
    system call for random bytes on every WebSocket frame showed in the gateway's profile)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


def bind_request_id(value: str | None) -> str:
    """Use ``value`` (when it looks sane) or a fresh id as the current request id."""
    rid = value if value and len(value) <= 64 and value.isprintable() else new_request_id()
    request_id_var.set(rid)
    return rid


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.role = role_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, role, request_id, fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("role", "request_id"):
            value = getattr(record, key, "")
            if value:
                entry[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS level role logger: msg key=value`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [stamp, f"{record.levelname.lower():<7}"]
        role = getattr(record, "role", "")
        if role:
            parts.append(f"[{role}]")
        parts.append(f"{record.name}: {record.getMessage()}")
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{k}={v}" for k, v in fields.items())
        rid = getattr(record, "request_id", "")
        if rid:
            parts.append(f"request_id={rid}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, fmt: str) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("aiormq", "aio_pika", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
