"""What the process runner needs from a role, and the health checks roles are built from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

Check = Callable[[], Awaitable[bool]]
Checks = Mapping[str, Check]


class Role(Protocol):
    """One of gateway, auth, chat, presence, as started by ``minitg serve``."""

    name: str

    async def start(self) -> None:
        """Open adapters, bind listeners and start serving; return once ready."""
        ...

    def drain(self) -> None:
        """Begin shutting down: report NOT_SERVING / stop accepting new work (no waiting)."""
        ...

    async def stop(self, grace: float) -> None:
        """Refuse new work, let in-flight work finish within ``grace`` s, release resources."""
        ...

    def describe(self) -> Mapping[str, str]:
        """Where this role listens, e.g. ``{"grpc": "127.0.0.1:50051"}``, for the start log."""
        ...
