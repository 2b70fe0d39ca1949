"""Every RPC declares who may call it (minitg.options.v1.auth), and the guard fails closed."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import minitg
import pytest
from google.protobuf.descriptor import MethodDescriptor
from minitg.options.v1 import options_pb2

from svckit.authn import Authenticator
from svckit.errors import PermissionDenied, Unauthenticated
from svckit.grpc_auth import PUBLIC, SERVICE, UNSPECIFIED, USER, CallGuard, declared_mode

PUBLIC_RPCS = {
    "minitg.auth.v1.AuthService.Register",
    "minitg.auth.v1.AuthService.Login",
    "minitg.auth.v1.AuthService.Refresh",
    "minitg.auth.v1.AuthService.GetJwks",
}


def _methods() -> Iterator[MethodDescriptor]:
    """Every RPC of every service generated into gen/minitg."""
    for info in pkgutil.walk_packages(minitg.__path__, "minitg."):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(info.name)
        for service in module.DESCRIPTOR.services_by_name.values():
            yield from service.methods


def _mode(method: MethodDescriptor) -> int:
    return int(method.GetOptions().Extensions[options_pb2.auth])


def test_every_rpc_declares_an_auth_mode() -> None:
    """No RPC of any generated service leaves its auth mode unspecified."""
    methods = list(_methods())
    assert len(methods) > 30
    assert [] == [m.full_name for m in methods if _mode(m) == UNSPECIFIED]


def test_internal_services_hold_exactly_the_service_only_rpcs() -> None:
    """An *InternalService RPC is SERVICE, a public one never is; only the four sign-in
    RPCs are PUBLIC."""
    modes = {m.full_name: _mode(m) for m in _methods()}
    internal = {name for name in modes if ".v1." in name and "InternalService." in name}
    assert internal == {name for name, mode in modes.items() if mode == SERVICE}
    assert PUBLIC_RPCS == {name for name, mode in modes.items() if mode == PUBLIC}
    assert {USER} == {mode for name, mode in modes.items() if name not in internal | PUBLIC_RPCS}


def test_declared_mode_reads_the_proto_and_knows_nothing_else() -> None:
    """The guard reads the option by wire path; an unknown service or method is UNSPECIFIED."""
    assert USER == declared_mode("/minitg.chat.v1.ChatService/SendMessage")
    assert SERVICE == declared_mode("/minitg.chat.v1.ChatInternalService/RelaySends")
    assert PUBLIC == declared_mode("/minitg.auth.v1.AuthService/GetJwks")
    assert UNSPECIFIED == declared_mode("/minitg.chat.v1.ChatService/NoSuchMethod")
    assert UNSPECIFIED == declared_mode("/test.v1.EchoService/Echo")


class _Context:
    """The one part of a grpc.aio ServicerContext the guard reads."""

    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _guard() -> CallGuard:
    async def no_keys() -> list[dict[str, str]]:
        return []

    async def never_revoked(session_id: str, token: str) -> bool:
        return False

    authn = Authenticator(
        jwks=no_keys, revoked=never_revoked, issuer="i", audience="a", session_ttl=0
    )
    return CallGuard(authn, "the-internal-secret")


def test_guard_fails_closed_and_checks_the_service_credential() -> None:
    """UNSPECIFIED is PERMISSION_DENIED whatever the caller sends; SERVICE takes only the
    internal secret; PUBLIC takes anything."""
    guard = _guard()
    secret = _Context(("authorization", "Service the-internal-secret"))
    with pytest.raises(PermissionDenied):
        guard.admit(UNSPECIFIED, secret)
    guard.admit(SERVICE, secret)
    with pytest.raises(PermissionDenied):
        guard.admit(SERVICE, _Context(("authorization", "Bearer a.b.c")))
    with pytest.raises(Unauthenticated):
        guard.admit(SERVICE, _Context(("authorization", "Service wrong")))
    guard.admit(PUBLIC, _Context())
