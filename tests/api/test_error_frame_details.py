"""A service's INVALID_FIELD status (its BadRequest detail) keeps metadata field in the
WebSocket Error frame."""

from __future__ import annotations

from pathlib import Path

from minitg.gateway.v1 import frames_pb2, messages_pb2

from tests.api.ws_support import direct_pair, next_frame, raw_socket
from tests.harness import running_system


async def test_websocket_error_keeps_field_in_metadata(shape: str, tmp_path: Path) -> None:
    """A service's INVALID_FIELD reaches a WebSocket Error with metadata field, read back
    from the status's BadRequest."""
    async with running_system(shape, tmp_path) as system:
        _ann, bob, chat = await direct_pair(system)
        async with raw_socket(system, bob.access_token) as ws:
            await next_frame(ws, "hello")
            ask = messages_pb2.GetHistory(chat_id=chat["id"], page_size=10, page_token="nope")
            frame = frames_pb2.ClientFrame(request_id=7, get_history=ask)
            await ws.send_bytes(frame.SerializeToString())
            error = await next_frame(ws, "error")
    assert (7, "INVALID_FIELD", {"field": "page_token"}, 0) == (
        error.request_id,
        error.reason,
        dict(error.metadata),
        error.retry_after_ms,
    )
