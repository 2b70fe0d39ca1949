"""A direct gRPC call whose bytes are not the method's message gets the error contract."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from svckit.errors import details_from_rpc_error
from tests.harness import running_system

# LookupUserRequest.email (field 1, a string) holding invalid UTF-8, bytes that are no
# protobuf at all, a truncated field.
UNDECODABLE = [b"\x0a\x02\xff\xfe", b"\xff\xff\xff", b"\x0a\x05ab"]


@pytest.mark.parametrize("raw", UNDECODABLE, ids=["bad utf-8", "garbage", "truncated"])
async def test_undecodable_request_is_malformed_request(
    shape: str, tmp_path: Path, raw: bytes
) -> None:
    """Undecodable request bytes are INVALID_ARGUMENT MALFORMED_REQUEST for a signed-in
    caller (never UNKNOWN naming the parser), and still UNAUTHENTICATED for anyone else."""
    async with running_system(shape, tmp_path, roles=("auth",)) as system:
        user = await system.register("raw")
        call = system.channel("auth").unary_unary("/minitg.auth.v1.AuthService/LookupUser")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(raw, metadata=user.metadata())
        details = details_from_rpc_error(caught.value)
        assert (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST") == (
            details.code,
            details.reason,
        )
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await call(raw)
        assert grpc.StatusCode.UNAUTHENTICATED == anonymous.value.code()
