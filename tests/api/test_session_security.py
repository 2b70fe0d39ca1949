"""Session security: refresh-token theft, ending sessions everywhere, durable revocations.

Every test runs on both shapes (embedded and distributed), through the real gateway and
auth service.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.auth_client import Reply, Rest
from tests.api.conftest import RestFactory

GRACE = {"MINITG_REFRESH_GRACE_SECONDS": "30"}


def _error(reply: Reply) -> tuple[int, str]:
    return reply.status, reply.code


async def _refresh(rest: Rest, token: str) -> Reply:
    return await rest.call("POST", "/v1/auth/refresh", json={"refresh_token": token})


def _tokens(reply: Reply) -> dict[str, Any]:
    assert reply.status in (200, 201), reply.body
    return dict(reply.body)


async def test_ancestor_of_a_used_token_is_theft_even_inside_grace(
    rest_system: RestFactory,
) -> None:
    """R0 -> R1 -> R2, then R0 again inside the grace window: reuse, the session is revoked."""
    async with rest_system(**GRACE) as (_, rest):
        r0 = _tokens(await rest.register("vic"))
        r1 = _tokens(await _refresh(rest, r0["refresh_token"]))
        r2 = _tokens(await _refresh(rest, r1["refresh_token"]))
        stolen = await _refresh(rest, r0["refresh_token"])
        assert (401, "REFRESH_TOKEN_REUSED") == _error(stolen)
        assert (401, "SESSION_REVOKED") == _error(await _refresh(rest, r2["refresh_token"]))
        me = await rest.call("GET", "/v1/users/me", token=r2["access_token"])
        assert (401, "SESSION_REVOKED") == _error(me)


async def test_lost_response_retry_is_honoured_exactly_once(rest_system: RestFactory) -> None:
    """R0 retried before R1 is used gets one new pair; a second retry of R0 is reuse."""
    async with rest_system(**GRACE) as (_, rest):
        r0 = _tokens(await rest.register("wes"))
        _tokens(await _refresh(rest, r0["refresh_token"]))  # the response the client lost
        retry = _tokens(await _refresh(rest, r0["refresh_token"]))
        again = await _refresh(rest, r0["refresh_token"])
        assert (401, "REFRESH_TOKEN_REUSED") == _error(again)
        assert (401, "SESSION_REVOKED") == _error(await _refresh(rest, retry["refresh_token"]))


async def test_concurrent_grace_retries_mint_one_pair(rest_system: RestFactory) -> None:
    """Several simultaneous retries of a rotated token: exactly one gets a pair."""
    async with rest_system(**GRACE) as (_, rest):
        r0 = _tokens(await rest.register("xan"))
        _tokens(await _refresh(rest, r0["refresh_token"]))
        replies = await asyncio.gather(*(_refresh(rest, r0["refresh_token"]) for _ in range(4)))
        assert 1 == sum(r.status == 200 for r in replies), [r.status for r in replies]
