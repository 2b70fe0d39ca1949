"""Which user ids exist, asked of the auth service with the caller's own token."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from minitg.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from chat_service.domain.errors import UserNotFound
from svckit.authn import Principal
from svckit.errors import Unavailable

_CHUNK = 100  # BatchGetUsers' limit per call


class UserDirectory:
    """Checks user ids against AuthService.BatchGetUsers."""

    def __init__(self, stub: auth_service_pb2_grpc.AuthServiceAsyncStub) -> None:
        self._stub = stub

    async def require_existing(self, user_ids: Sequence[int], caller: Principal) -> None:
        """Raise USER_NOT_FOUND (metadata user_id: the first missing id) unless all exist."""
        ids = list(dict.fromkeys(user_ids))
        found: set[int] = set()
        for start in range(0, len(ids), _CHUNK):
            request = auth_service_pb2.BatchGetUsersRequest(user_ids=ids[start : start + _CHUNK])
            try:
                reply = await self._stub.BatchGetUsers(request, metadata=caller.metadata())
            except grpc.aio.AioRpcError as exc:
                raise Unavailable(f"the auth service did not answer: {exc.code().name}") from exc
            found.update(user.id for user in reply.users)
        for user_id in ids:
            if user_id not in found:
                raise UserNotFound(user_id)
