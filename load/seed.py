"""Users and chats, created through the real public API (REST), concurrently.

Registration goes through the gateway's REST endpoint to the auth service like any app's
(bcrypt at the bench's cost 4, see system.BENCH_ENV); chats are created by their first
member with ``POST /v1/chats``. Against the control there is no API to seed: a user's id
is its token and the chats are posted in one call.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from tgclient import RequestFailed, RestClient

PASSWORD = "load-password-1"
T = TypeVar("T")


@dataclass(frozen=True)
class Device:
    """One seeded account (one device): who it is and the token its socket uses."""

    user_id: int
    token: str


async def _bounded(jobs: list[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run ``jobs`` with at most ``concurrency`` at once, each retried on transient errors."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            for attempt in range(5):
                try:
                    return await job()
                except (RequestFailed, aiohttp.ClientError, TimeoutError) as exc:
                    if attempt == 4 or (isinstance(exc, RequestFailed) and exc.status < 500):
                        raise
                    await asyncio.sleep(0.2 * 2**attempt)
            raise AssertionError("unreachable")

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def register_users(gateways: list[str], count: int, concurrency: int = 48) -> list[Device]:
    """``count`` new accounts, registered round-robin over the gateways."""
    run = secrets.token_hex(3)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        rests = [RestClient(url, session) for url in gateways]

        def job(i: int) -> Callable[[], Awaitable[Device]]:
            async def register() -> Device:
                rest = rests[i % len(rests)]
                account = await rest.register(f"load{i}-{run}@example.org", PASSWORD, f"u{i}")
                return Device(account.user_id, account.access_token)

            return register

        return await _bounded([job(i) for i in range(count)], concurrency)


async def create_chats(
    gateways: list[str], devices: list[Device], chats: list[list[int]], concurrency: int = 32
) -> list[int]:
    """Create each chat (device indexes; the first member creates it); return chat ids."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        rests = [RestClient(url, session) for url in gateways]

        def job(n: int, members: list[int]) -> Callable[[], Awaitable[int]]:
            async def create() -> int:
                rest = rests[n % len(rests)]
                owner = devices[members[0]]
                others = [devices[m].user_id for m in members[1:]]
                if len(members) == 2:
                    chat = await rest.direct_chat(owner.token, others[0])
                else:
                    chat = await rest.group_chat(owner.token, f"load group {n}", others)
                return int(chat["id"])

            return create

        return await _bounded([job(n, m) for n, m in enumerate(chats)], concurrency)


def control_users(count: int) -> list[Device]:
    """The control has no accounts: user ids 1..count, each token is the id."""
    return [Device(i, str(i)) for i in range(1, count + 1)]


async def control_chats(base: str, devices: list[Device], chats: list[list[int]]) -> list[int]:
    body = {"chats": [[devices[m].user_id for m in members] for members in chats]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + "/chats", json=body) as resp,
    ):
        resp.raise_for_status()
        reply = await resp.json()
        return [int(i) for i in reply["ids"]]


async def timed(coro: Awaitable[T]) -> tuple[T, float]:
    """``coro``'s result and how long it took, in seconds."""
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start
