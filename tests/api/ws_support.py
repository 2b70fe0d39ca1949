"""Helpers for WebSocket api tests: accounts, chats and raw sockets on an in-process system."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from minitg.gateway.v1 import frames_pb2

from tests.harness import System
from tgclient import Account, MinitgClient, RestClient


async def accounts(rest: RestClient, *names: str) -> list[Account]:
    return [
        await rest.register(f"{n}-{secrets.token_hex(3)}@example.org", "password123", n)
        for n in names
    ]


async def direct_pair(system: System) -> tuple[Account, Account, dict[str, Any]]:
    """Ann and Bob, registered, and their direct chat."""
    async with RestClient(system.http_url) as rest:
        ann, bob = await accounts(rest, "ann", "bob")
        chat = await rest.direct_chat(ann.access_token, bob.user_id)
    return ann, bob, chat


def ws_url(system: System) -> str:
    return system.http_url.replace("http://", "ws://")


@asynccontextmanager
async def clients(system: System, *accs: Account) -> AsyncIterator[list[MinitgClient]]:
    opened = [MinitgClient(ws_url(system), a.access_token) for a in accs]
    try:
        for client in opened:
            await client.connect()
        yield opened
    finally:
        for client in opened:
            await client.close()


@asynccontextmanager
async def raw_socket(
    system: System, token: str | None, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= kwargs.pop("headers", {})
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(system) + "/v1/ws", headers=headers, **kwargs) as ws,
    ):
        yield ws


async def server_frames(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 10
) -> tuple[list[frames_pb2.ServerFrame], int]:
    """Every binary frame until the server closes, and the code of its close frame."""
    frames = []
    while True:
        msg = await ws.receive(timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            frames.append(frames_pb2.ServerFrame.FromString(msg.data))
        elif msg.type == aiohttp.WSMsgType.CLOSE:
            return frames, int(msg.data)
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return frames, int(ws.close_code or 1006)


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 5) -> Any:
    """Skip frames until one whose payload is ``kind``; return that payload."""
    while True:
        msg = await ws.receive(timeout)
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise AssertionError(f"socket ended with {msg.type} {ws.close_code} before {kind}")
        frame = frames_pb2.ServerFrame()
        frame.ParseFromString(msg.data)
        if frame.WhichOneof("payload") == kind:
            return getattr(frame, kind)
