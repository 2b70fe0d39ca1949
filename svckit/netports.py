"""Picking loopback ports for tools that start minitg processes (the tests, the load tool)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port free now on 127.0.0.1, chosen BELOW the kernel's ephemeral range.

    A port the kernel handed out for ``bind(0)`` can be handed out again to any outgoing
    connection before the child process binds it (seen in CI: EADDRINUSE); ports outside
    the ephemeral range are never picked by the kernel, so only our own picks compete.
    """
    low, _ = _ephemeral_range()
    start = max(1024, low - 12_000)
    for _ in range(200):
        port = random.randrange(start, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


_HANDED_OUT: set[int] = {25690}  # the private broker's distribution port (private_broker.py)
