"""The typed requests of the reference client, one method per WebSocket request kind.

``MinitgClient`` supplies ``request`` (one frame out, its Result or Error back) and
``_reconnected``; these methods build the requests and read the replies. ``send`` retries
with the same ``client_msg_id``, so a retry never makes a second message.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from minitg.chat.v1 import chat_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2
from minitg.presence.v1 import presence_pb2

from tgclient.errors import ConnectionClosed, RequestFailed


class Calls:
    """Request helpers over ``request`` (implemented by the client)."""

    async def request(self, kind: str, message: Any, *, timeout: float = 30) -> Any:
        raise NotImplementedError

    async def _reconnected(self) -> None:
        raise NotImplementedError

    async def send(
        self, chat_id: int, body: chat_pb2.MessageBody, *, client_msg_id: str = "", retries: int = 3
    ) -> messages_pb2.SendMessageResult:
        """Send a message; retried (same client_msg_id) on retryable errors and reconnects."""
        request = messages_pb2.SendMessage(
            chat_id=chat_id, client_msg_id=client_msg_id or uuid.uuid4().hex, body=body
        )
        for attempt in range(retries + 1):
            try:
                reply: messages_pb2.SendMessageResult = await self.request("send_message", request)
                return reply
            except RequestFailed as exc:
                if not exc.retryable or attempt == retries:
                    raise
                await asyncio.sleep(max(exc.retry_after_ms / 1000, 0.1 * 2**attempt))
            except (TimeoutError, ConnectionClosed, ConnectionError):
                if attempt == retries:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
                await self._reconnected()
        raise AssertionError("unreachable")

    async def send_text(self, chat_id: int, text: str, *, client_msg_id: str = "") -> Any:
        return await self.send(
            chat_id, chat_pb2.MessageBody(text=text), client_msg_id=client_msg_id
        )

    async def read_history(self, chat_id: int, max_seq: int) -> Any:
        req = messages_pb2.ReadHistory(chat_id=chat_id, max_seq=max_seq)
        return await self.request("read_history", req)

    async def set_typing(self, chat_id: int, typing: bool = True) -> Any:
        action = presence_pb2.TYPING_ACTION_TYPING if typing else presence_pb2.TYPING_ACTION_CANCEL
        req = messages_pb2.SetTyping(chat_id=chat_id, action=action)
        return await self.request("set_typing", req)

    async def get_state(self) -> Any:
        return await self.request("get_state", messages_pb2.GetState())

    async def get_history(self, chat_id: int, **fields: Any) -> Any:
        req = messages_pb2.GetHistory(chat_id=chat_id, **fields)
        return await self.request("get_history", req)

    async def edit_message(self, chat_id: int, message_id: int, body: chat_pb2.MessageBody) -> Any:
        req = messages_pb2.EditMessage(chat_id=chat_id, message_id=message_id, body=body)
        return await self.request("edit_message", req)

    async def delete_messages(
        self, chat_id: int, message_ids: list[int], *, for_everyone: bool = False
    ) -> Any:
        req = messages_pb2.DeleteMessages(
            chat_id=chat_id, message_ids=message_ids, for_everyone=for_everyone
        )
        return await self.request("delete_messages", req)

    async def ping(self) -> Any:
        return await self.request("ping", frames_pb2.Ping())

    async def get_difference(self, pts: int, limit: int = 0) -> list[Any]:
        req = messages_pb2.GetDifference(pts=pts, limit=limit)
        chunks: list[Any] = await self.request("get_difference", req)
        return chunks
