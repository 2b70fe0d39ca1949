"""The gateway's listening sockets: several accept queues on one port (SO_REUSEPORT).

The kernel caps a listen queue at ``net.core.somaxconn`` (4,096 on this machine) whatever
backlog is asked for. 10,000 clients connecting at once overflowed it: the kernel dropped
every handshake it could not queue, and those clients were retried by TCP's own timers
1, 3, 7 and 15 s later, in synchronised waves that overflowed the queue again. Several
sockets bound to one port with SO_REUSEPORT each have their own queue and the kernel
spreads new connections over them; one event loop serves them all. Elsewhere (no
SO_REUSEPORT load balancing) the gateway keeps one socket. A port some other process
already listens on is still refused (SO_REUSEPORT alone would let a second gateway of the
same user share it silently).
"""

from __future__ import annotations

import socket
import sys

from aiohttp import web

BACKLOG = 4096  # per socket: a reconnect storm must queue, not be refused by the kernel
LISTENERS = 4 if sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT") else 1


async def listen(runner: web.AppRunner, host: str, port: int, *, listeners: int = LISTENERS) -> int:
    """Serve ``runner`` on ``listeners`` sockets bound to ``host:port``; return the port
    (``port`` 0 picks one free port for all of them)."""
    share = listeners > 1
    if share and port:
        _refuse_if_taken(host, port)
    first = web.TCPSite(runner, host, port, backlog=BACKLOG, reuse_port=share or None)
    await first.start()
    bound = first.port
    for _ in range(listeners - 1):
        await web.TCPSite(runner, host, bound, backlog=BACKLOG, reuse_port=True).start()
    return bound


def _refuse_if_taken(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) when ``host:port`` is bound by another socket."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
