"""The Hello frame: the first thing a new connection receives."""

from __future__ import annotations

import time

import grpc
from minitg.gateway.v1 import frames_pb2

from gateway.relays import StateReader
from gateway.ws_hub import Connection
from svckit.config import MessagingConfig

_INT64_MAX = 2**63 - 1

# The protocol Hello names: the WebSocket subprotocol of this version (gateway/ws_handler.py).
PROTOCOL = "minitg.v1"
# What this server speaks beyond the base protocol; each name is defined by Hello.features.
FEATURES = ("renew_token", "edit", "delete", "typing", "presence", "receipts")


async def hello_frame(conn: Connection, states: StateReader, cfg: MessagingConfig) -> bytes:
    """Session, limits and the user's current update-log state (when the chat service has it)."""
    hello = frames_pb2.Hello(
        session_id=conn.session_id,
        user_id=conn.user_id,
        server_time_ms=int(time.time() * 1000),
        heartbeat_interval_ms=int(cfg.heartbeat_seconds * 1000),
        max_frame_bytes=cfg.max_frame_bytes,
        max_in_flight_requests=cfg.max_in_flight_per_connection,
        # Verified claims are bounded (svckit.tokens); the clamp keeps a protobuf int64
        # from ever raising after the 101, whatever a future verifier lets through.
        token_expires_at_ms=min(max(int(conn.token_exp * 1000), 0), _INT64_MAX),
        protocol=PROTOCOL,
        features=FEATURES,
    )
    try:
        hello.state.CopyFrom(await states.state_of(conn.user_id))
    except grpc.aio.AioRpcError:
        hello.ClearField("state")  # the client asks with GetState itself
    return frames_pb2.ServerFrame(hello=hello).SerializeToString()
