"""Build hostile access tokens for the rejection tests, from a real one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _signing_key(system: Any) -> tuple[str, ec.EllipticCurvePrivateKey]:
    keys_dir = Path(system.cfg.auth.keys_dir)
    path = sorted(keys_dir.glob("*.pem"))[-1]
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return path.stem, key


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def resign(
    system: Any, token: str, *, headers: dict[str, Any] | None = None, **changes: Any
) -> str:
    """The token's claims with ``changes``, signed by the real key (valid signature)."""
    kid, key = _signing_key(system)
    claims = claims_of(token) | changes
    return jwt.encode(
        claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"} | (headers or {})
    )


def unsigned(token: str) -> str:
    """The same claims with alg=none and no signature."""
    header = {"alg": "none", "typ": "at+jwt"}
    parts = [json.dumps(header).encode(), json.dumps(claims_of(token)).encode()]
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts) + "."


def hs256_with_public_key(system: Any, token: str) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the public key PEM."""
    kid, key = _signing_key(system)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    parts = [json.dumps(header).encode(), json.dumps(claims_of(token)).encode()]
    signing_input = ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def foreign_key(token: str, kid: str) -> str:
    """Signed by a key the server never published."""
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        claims_of(token), key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}
    )


def tampered(token: str) -> str:
    """The payload changed (the next user's id) but the original signature kept."""
    header, _payload, signature = token.split(".")
    claims = claims_of(token)
    claims["sub"] = str(int(claims["sub"]) + 1)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"
