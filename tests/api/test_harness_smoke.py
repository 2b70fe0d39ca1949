"""The in-process harness starts every role on both backend shapes."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.harness import SHAPES, running_system


@pytest.mark.parametrize("shape", SHAPES)
async def test_system_is_healthy(shape: str, tmp_path: Path) -> None:
    """All roles start in-process and the gateway reports every dependency up."""
    async with running_system(shape, tmp_path) as system:
        user = await system.register("alice")
        assert user.id > 0
        async with aiohttp.ClientSession() as http, http.get(f"{system.http_url}/v1/health") as r:
            body = await r.json()
            assert (200, "ok") == (r.status, body["status"])
