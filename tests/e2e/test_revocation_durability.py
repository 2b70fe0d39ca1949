"""A revoked session stays revoked through a Redis restart, even one that reloads an older
snapshot (the shared revoked-session list is only a cache of the auth database).

Distributed shape, whole processes, on a private Redis the test snapshots and restarts.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis_client

from tests.e2e.cluster import distributed_cluster
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.e2e

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def _upgrade(http: aiohttp.ClientSession, base: str, token: str) -> tuple[int, str]:
    """Status and error code of a WebSocket upgrade (101 and "" when it opened)."""
    headers = UPGRADE | {"Authorization": f"Bearer {token}"}
    async with http.get(f"{base}/v1/ws", headers=headers) as resp:
        if resp.status == 101:
            return 101, ""
        body = await resp.json(content_type=None)
        return resp.status, str(body["error"]["code"])


async def _post(http: aiohttp.ClientSession, url: str, **kwargs: object) -> dict[str, object]:
    async with http.post(url, **kwargs) as resp:  # type: ignore[arg-type]
        assert resp.status in (200, 201, 204), await resp.text()
        return dict(await resp.json()) if resp.status != 204 else {}


async def test_logout_survives_a_redis_restart_from_an_older_snapshot(tmp_path: Path) -> None:
    """Logged out after Redis's last snapshot; Redis restarts from it: the token is refused."""
    server = PrivateRedis()
    server.start()
    store = redis_client.Redis.from_url(server.url)
    try:
        async with (
            distributed_cluster(tmp_path, gateways=1, chats=1, redis_url=server.url) as cluster,
            aiohttp.ClientSession() as http,
        ):
            base = cluster.gateways[0]
            complete = f"{cluster.redis_prefix}sessions:list-complete"
            for _ in range(100):  # the auth process builds the list at start
                if await store.get(complete) is not None:
                    break
                await asyncio.sleep(0.1)
            reg = await _post(
                http,
                f"{base}/v1/auth/register",
                json={
                    "email": f"sam-{secrets.token_hex(4)}@example.org",
                    "password": "correct horse battery",
                    "display_name": "sam",
                },
            )
            token = str(reg["access_token"])
            assert (101, "") == await _upgrade(http, base, token)
            await store.save()  # the snapshot: list complete, this session not on it
            headers = {"Authorization": f"Bearer {token}"}
            await _post(http, f"{base}/v1/auth/logout", headers=headers)
            assert (401, "SESSION_REVOKED") == await _upgrade(http, base, token)

            await asyncio.to_thread(server.restart)  # reloads the snapshot
            answers = []
            for _ in range(100):  # bounded: services reconnect, auth notices the rollback
                answers.append(await _upgrade(http, base, token))
                if answers[-1] == (401, "SESSION_REVOKED"):
                    break
                await asyncio.sleep(0.1)
            assert (401, "SESSION_REVOKED") == answers[-1], answers
            # And it stays refused: the list was rebuilt from the auth database.
            revoked = f"{cluster.redis_prefix}sessions:revoked:{reg['session_id']}"
            for _ in range(100):
                if await store.get(revoked) is not None:
                    break
                await asyncio.sleep(0.1)
            assert b"1" == await store.get(revoked)
            assert b"1" == await store.get(complete)
            assert (401, "SESSION_REVOKED") == await _upgrade(http, base, token)
    finally:
        await store.aclose()
        await asyncio.to_thread(server.remove)
