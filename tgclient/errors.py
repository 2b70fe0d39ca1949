"""Errors the client raises, carrying the server's reason."""

from __future__ import annotations

from collections.abc import Mapping


class RequestFailed(Exception):
    """A request answered with an error (HTTP JSON error or WebSocket Error frame)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int = 0,
        retry_after_ms: int = 0,
        retryable: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.status = reason, message, status
        self.retry_after_ms, self.retryable = retry_after_ms, retryable
        self.metadata = dict(metadata or {})


class ConnectionClosed(Exception):
    """The WebSocket closed; ``code`` and ``reason`` come from the Goodbye / close frame."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed ({code} {reason})")
        self.code, self.reason = code, reason
