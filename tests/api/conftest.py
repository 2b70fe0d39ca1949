"""Fixtures for the api tests: an in-process system per test, on each backend shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.api.auth_client import Rest
from tests.harness import SHAPES, System, running_system


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


RestFactory = Callable[..., AbstractAsyncContextManager[tuple[System, Rest]]]


@pytest.fixture
def rest_system(shape: str, tmp_path: Path) -> RestFactory:
    """Start a system (with extra env) and a REST client for it."""

    @asynccontextmanager
    async def start(**env: str) -> AsyncIterator[tuple[System, Rest]]:
        defaults = {"MINITG_SESSION_CHECK_TTL_SECONDS": "0"}
        async with (
            running_system(shape, tmp_path, env=defaults | env) as system,
            aiohttp.ClientSession() as http,
        ):
            yield system, Rest(http, system.http_url)

    return start
