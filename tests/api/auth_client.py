"""A tiny HTTP client for the auth REST API tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Reply:
    """An HTTP answer, read completely."""

    status: int
    body: Any
    headers: dict[str, str]
    cookies: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.body["error"]["code"]) if isinstance(self.body, dict) else ""


class Rest:
    """Calls the gateway's REST API and returns whole replies."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.base + path, json=json, data=data, headers=all_headers
        ) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw else None
            return Reply(resp.status, body, dict(resp.headers), dict(resp.cookies))

    async def register(self, name: str = "user", **fields: Any) -> Reply:
        body = {
            "email": f"{name}-{secrets.token_hex(4)}@example.org",
            "password": "correct horse battery",
            "display_name": name,
        } | fields
        return await self.call("POST", "/v1/auth/register", json=body)

    async def login(self, email: str, password: str, **fields: Any) -> Reply:
        body = {"email": email, "password": password} | fields
        return await self.call("POST", "/v1/auth/login", json=body)
