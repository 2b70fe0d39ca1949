"""Token verification for services other than auth: keys and revocation over gRPC.

The JWKS comes from ``AuthService.GetJwks``; revocation from the shared revoked-session
list (``svckit.revocations``) or, when that list is unreachable or not known to be
complete, from ``AuthInternalService.CheckSession``, called with the internal service
credential. Both answers are cached by ``Authenticator``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from minitg.auth.v1 import (
    auth_internal_service_pb2,
    auth_internal_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
)

from svckit.authn import Authenticator, service_metadata
from svckit.config import AuthConfig
from svckit.revocations import RevocationList


def remote_authenticator(
    stub: auth_service_pb2_grpc.AuthServiceAsyncStub,
    internal: auth_internal_service_pb2_grpc.AuthInternalServiceAsyncStub,
    cfg: AuthConfig,
    internal_token: str,
    revocations: RevocationList | None = None,
) -> Authenticator:
    """An Authenticator that asks the auth service for keys and revocations."""
    service_md = service_metadata(internal_token)

    async def jwks() -> Sequence[Mapping[str, str]]:
        reply = await stub.GetJwks(auth_service_pb2.GetJwksRequest())
        return [
            {
                "kid": k.kid,
                "kty": k.kty,
                "crv": k.crv,
                "x": k.x,
                "y": k.y,
                "alg": k.alg,
                "use": k.use,
            }
            for k in reply.keys
        ]

    async def revoked(session_id: str, _token: str) -> bool:
        if revocations is not None:
            try:
                listed = await revocations.contains(session_id)
            except Exception:  # the shared list is unreachable: ask the auth service
                listed = None
            if listed is not None:  # None: the store forgot the list, not rebuilt yet
                return listed
        reply = await internal.CheckSession(
            auth_internal_service_pb2.CheckSessionRequest(session_id=session_id),
            metadata=service_md,
        )
        return bool(reply.revoked)

    return Authenticator(
        jwks=jwks,
        revoked=revoked,
        issuer=cfg.issuer,
        audience=cfg.audience,
        session_ttl=cfg.session_check_ttl_seconds,
    )
