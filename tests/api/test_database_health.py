"""/v1/health notices a wedged database: while something holds the chat database's write
lock, writes cannot succeed, so the chat service reports down; it is up again once the
lock is released.

The embedded shape only: SQLite has a database-wide write lock that a second connection
(another process on the same file) can hold, PostgreSQL has none. The PostgreSQL side of
"wedged" (every pooled connection stuck) is pinned by the contract suite
(tests/contract/test_database_cancellation.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from svckit.backends import open_database
from tests.harness import System, running_system

pytestmark = pytest.mark.asyncio


async def health(system: System) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(system.http_url + "/v1/health") as response,
    ):
        return response.status, await response.json()


async def wait_for_health(system: System, status: int, chat: str) -> dict[str, Any]:
    """Poll /v1/health until it answers ``status`` with the chat check ``chat``."""
    body: dict[str, Any] = {}
    async with asyncio.timeout(30):
        while True:
            code, body = await health(system)
            if (code, body["checks"].get("chat")) == (status, chat):
                return body
            await asyncio.sleep(0.2)


async def test_health_reports_a_wedged_embedded_database(tmp_path: Path) -> None:
    """While another connection holds the chat database's write lock, /v1/health answers 503
    with chat down; once it lets go, 200 with chat up."""
    async with running_system("embedded", tmp_path) as system:
        await wait_for_health(system, 200, "up")
        other = await open_database(system.cfg.database_url, "chat")
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold_write_lock() -> None:
            async with other.transaction() as tx:
                await tx.fetchval("SELECT count(*) FROM sqlite_master")
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_write_lock())
        try:
            await holding.wait()
            body = await wait_for_health(system, 503, "down")
            assert "unavailable" == body["status"]
        finally:
            release.set()
            await holder
            await other.close()

        await wait_for_health(system, 200, "up")
