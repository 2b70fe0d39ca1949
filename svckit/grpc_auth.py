"""Who may call each RPC: the auth mode its proto declares, enforced in one place.

Every RPC of every minitg service declares ``option (minitg.options.v1.auth)``
(proto/minitg/options/v1/options.proto). The server interceptor asks a ``CallGuard``
before the method runs: PUBLIC passes, USER needs a valid access token (the caller's
Principal is then bound for the servicer, see ``svckit.authn.current_principal``),
SERVICE needs the internal service credential, and a method without a declared mode is
refused (fail closed), so a new RPC cannot ship open by forgetting a hand check.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from google.protobuf import descriptor_pool
from grpc import aio
from minitg.options.v1 import options_pb2

from svckit.authn import Authenticator, bind_principal, require_service_caller
from svckit.errors import PermissionDenied, Unavailable

AuthMode: TypeAlias = options_pb2.AuthMode.ValueType
UNSPECIFIED = options_pb2.AUTH_MODE_UNSPECIFIED
PUBLIC = options_pb2.AUTH_MODE_PUBLIC
USER = options_pb2.AUTH_MODE_USER
SERVICE = options_pb2.AUTH_MODE_SERVICE


def declared_mode(method: str) -> AuthMode:
    """The auth mode the proto declares for ``/package.Service/Method``; UNSPECIFIED when
    the method or its option is unknown to this process's descriptor pool."""
    service_name, _, method_name = method.lstrip("/").rpartition("/")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return UNSPECIFIED
    found = service.methods_by_name.get(method_name)
    if found is None:
        return UNSPECIFIED
    return found.GetOptions().Extensions[options_pb2.auth]


class CallGuard:
    """Enforces each method's declared auth mode (see the module docstring)."""

    def __init__(self, authn: Authenticator, internal_token: str) -> None:
        self._authn, self._internal_token = authn, internal_token
        self._modes: dict[str, AuthMode] = {}

    def mode(self, method: str) -> AuthMode:
        """``method``'s declared mode, read from the descriptor pool once per method."""
        mode = self._modes.get(method)
        if mode is None:
            mode = self._modes[method] = declared_mode(method)
        return mode

    def admit(self, mode: AuthMode, context: Any) -> None:
        """Check a PUBLIC, SERVICE or undeclared call (USER calls go to ``authenticate``)."""
        if mode == SERVICE:
            require_service_caller(context.invocation_metadata(), self._internal_token)
        elif mode != PUBLIC:
            raise PermissionDenied("this RPC declares no auth mode, so nobody may call it")

    async def authenticate(self, context: Any) -> None:
        """Verify a USER call's access token and bind its Principal for the servicer."""
        try:
            principal = await self._authn.from_metadata(context.invocation_metadata())
        except aio.AioRpcError as exc:  # keys or revocation answer from the auth service
            raise Unavailable("the auth service did not answer") from exc
        bind_principal(principal)
