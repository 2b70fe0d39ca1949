"""A bare WebSocket client on asyncio streams, for tests that must see the wire itself:
when the server's close frame came, and whether the server kept the TCP connection open
until the client's own close frame (which client libraries answer and hide)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

OP_BINARY, OP_CLOSE = 0x2, 0x8


class WireSocket:
    """One client WebSocket: read whole frames, write masked ones."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read_frame(self, timeout: float = 10) -> tuple[int, bytes]:
        """The next frame's opcode and payload (unfragmented frames only)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        size = head[1] & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, await self.reader.readexactly(size)

    async def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    async def eof_within(self, timeout: float) -> bool:
        """Whether the server ends the TCP connection within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.reader.read(1), timeout) == b""
        except TimeoutError:
            return False


@asynccontextmanager
async def wire_socket(http_url: str, token: str) -> AsyncIterator[WireSocket]:
    """Upgrade ``GET /v1/ws`` by hand with a bearer token."""
    url = urlsplit(http_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    status = await reader.readline()
    assert b" 101 " in status, status
    while (await reader.readline()).strip():
        pass  # the rest of the upgrade response's headers
    try:
        yield WireSocket(reader, writer)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
