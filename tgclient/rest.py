"""The REST half of the reference client: accounts, chats, history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from tgclient.errors import RequestFailed


@dataclass
class Account:
    """A signed-in device: who, which session, and its tokens."""

    user_id: int
    email: str
    session_id: str
    access_token: str
    refresh_token: str


class RestClient:
    """JSON over HTTP to the gateway. Reuses one aiohttp session; close it when done."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owned = session is None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, path: str, *, token: str = "", json: Any = None) -> Any:
        """One request; the JSON body on success, RequestFailed with the reason otherwise."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._session.request(
            method, self.base_url + path, json=json, headers=headers
        ) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status >= 400:
                error = (body or {}).get("error", {})
                raise RequestFailed(
                    error.get("code", "HTTP_ERROR"), error.get("message", resp.reason or ""),
                    status=resp.status, metadata=error.get("metadata"),
                    retry_after_ms=int(resp.headers.get("Retry-After", "0")) * 1000,
                )  # fmt: skip
            return body

    async def register(
        self, email: str, password: str, display_name: str, device_name: str = ""
    ) -> Account:
        body = await self.call(
            "POST", "/v1/auth/register",
            json={"email": email, "password": password, "display_name": display_name,
                  "device_name": device_name},
        )  # fmt: skip
        return _account(body, email)

    async def login(self, email: str, password: str, device_name: str = "") -> Account:
        body = await self.call(
            "POST", "/v1/auth/login",
            json={"email": email, "password": password, "device_name": device_name},
        )  # fmt: skip
        return _account(body, email)

    async def direct_chat(self, token: str, peer_id: int) -> dict[str, Any]:
        """The direct chat with ``peer_id`` (the Chat of CreateChatResponse)."""
        body = await self.call(
            "POST", "/v1/chats", token=token,
            json={"kind": "CHAT_KIND_DIRECT", "peer_user_id": peer_id},
        )  # fmt: skip
        chat: dict[str, Any] = body["chat"]
        return chat

    async def group_chat(self, token: str, title: str, member_ids: list[int]) -> dict[str, Any]:
        body = await self.call(
            "POST", "/v1/chats", token=token,
            json={"kind": "CHAT_KIND_GROUP", "title": title, "member_user_ids": member_ids},
        )  # fmt: skip
        chat: dict[str, Any] = body["chat"]
        return chat

    async def chats(self, token: str, page_token: str = "") -> dict[str, Any]:
        query = f"?page_token={page_token}" if page_token else ""
        body: dict[str, Any] = await self.call("GET", f"/v1/chats{query}", token=token)
        return body

    async def history(self, token: str, chat_id: int, **query: Any) -> dict[str, Any]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        path = f"/v1/chats/{chat_id}/messages" + (f"?{params}" if params else "")
        body: dict[str, Any] = await self.call("GET", path, token=token)
        return body


def _account(body: dict[str, Any], email: str) -> Account:
    return Account(
        user_id=int(body["user"]["id"]),
        email=email,
        session_id=body["session_id"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )
