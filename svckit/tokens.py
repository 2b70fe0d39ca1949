"""ES256 access tokens: issue (auth service only) and verify (every service).

Pure functions of ``now``: no clock is read here, so tests can move time freely.
Verification pins the algorithm and the header type, requires every claim we issue, and
checks ``iss``, ``aud`` and ``exp`` (with a small leeway) itself; revocation of the session
is checked by the caller (``svckit.authn``), because it needs I/O.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from svckit.errors import Unauthenticated
from svckit.reasons import Reason

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"  # RFC 9068: tells an access token from any other JWT we might sign
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "iat", "exp", "jti")
INT64_MAX = 2**63 - 1
# Bounds on what a verified token may claim (MINITG_ACCESS_TOKEN_TTL_SECONDS is at most
# MAX_TOKEN_LIFETIME_SECONDS). The skew allowance is for a signer whose clock runs ahead.
MAX_TOKEN_LIFETIME_SECONDS = 86_400
CLOCK_SKEW_LIMIT_SECONDS = 300
MAX_ID_CLAIM_CHARS = 128
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    user_id: int
    session_id: str
    issued_at: int
    expires_at: int
    token_id: str


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One EC P-256 key pair and its key id."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()))


def public_jwk(kid: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The JWKS entry for one public key (RFC 7517/7518)."""
    numbers = public_key.public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

    return {
        "kid": kid,
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x),
        "y": b64(numbers.y),
        "alg": ALGORITHM,
        "use": "sig",
    }


def public_key_from_jwk(jwk: Mapping[str, str]) -> ec.EllipticCurvePublicKey:
    """Parse one JWKS entry; only EC P-256 signing keys are accepted."""
    if (
        jwk.get("kty") != "EC"
        or jwk.get("crv") != "P-256"
        or jwk.get("alg", ALGORITHM) != ALGORITHM
    ):
        raise ValueError(f"unsupported key {jwk.get('kid')!r}: need EC P-256 / ES256")

    def unb64(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    numbers = ec.EllipticCurvePublicNumbers(unb64(jwk["x"]), unb64(jwk["y"]), ec.SECP256R1())
    return numbers.public_key()


class TokenIssuer:
    """Signs access tokens with the newest key of the ring."""

    def __init__(self, key: SigningKey, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key, self._issuer, self._audience, self.ttl_seconds = (
            key,
            issuer,
            audience,
            ttl_seconds,
        )

    def issue(self, user_id: int, session_id: str, now: float) -> tuple[str, int]:
        """Return (token, expires_at) for a session, valid ``ttl_seconds`` from ``now``."""
        issued_at = int(now)
        expires_at = issued_at + self.ttl_seconds
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": session_id,
            "iat": issued_at,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(12),
        }
        headers = {"kid": self._key.kid, "typ": TOKEN_TYPE}
        token = jwt.encode(claims, self._key.private_key, algorithm=ALGORITHM, headers=headers)
        return token, expires_at


KeyLookup = Callable[[str], ec.EllipticCurvePublicKey | None]


class TokenVerifier:
    """Checks an access token's signature, header and claims against a key lookup."""

    def __init__(
        self, keys: KeyLookup, *, issuer: str, audience: str, leeway_seconds: int = 30
    ) -> None:
        self._keys, self._issuer, self._audience = keys, issuer, audience
        self.leeway = leeway_seconds

    def kid_of(self, token: str) -> str:
        """The token's key id (unverified), or raise TOKEN_INVALID when it has none."""
        header = _header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("access token has no key id", reason=Reason.TOKEN_INVALID)
        return kid

    def verify(self, token: str, now: float) -> AccessClaims:
        """Return the claims of a valid token; raise Unauthenticated with the reason."""
        header = _header(token)
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise Unauthenticated(
                "access token has the wrong algorithm or type", reason=Reason.TOKEN_INVALID
            )
        key = self._keys(self.kid_of(token))
        if key is None:
            raise Unauthenticated(
                "access token signed by an unknown key", reason=Reason.TOKEN_INVALID
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(
                f"access token rejected: {exc}", reason=Reason.TOKEN_INVALID
            ) from None
        return _claims(claims, now, self.leeway)


def _header(token: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError:
        raise Unauthenticated("access token is not a JWT", reason=Reason.TOKEN_INVALID) from None


def _claims(claims: Mapping[str, Any], now: float, leeway: int) -> AccessClaims:
    """Every claim checked for type and range before it is used: a token signed by our own
    key may still carry values we never issue (``exp=2**63`` once crashed the WebSocket
    hello, which turns ``exp`` into an int64 of milliseconds)."""
    user_id = _user_id(claims["sub"])
    session_id, token_id = _text(claims["sid"]), _text(claims["jti"])
    issued_at, expires_at = _time(claims["iat"], now), _time(claims["exp"], now)
    if now > expires_at + leeway:
        raise Unauthenticated("access token expired", reason=Reason.TOKEN_EXPIRED)
    if issued_at > now + leeway:
        raise Unauthenticated("access token issued in the future", reason=Reason.TOKEN_INVALID)
    if not issued_at < expires_at <= issued_at + MAX_TOKEN_LIFETIME_SECONDS:
        raise _malformed("exp must be after iat and within a day of it")
    if "nbf" in claims and _time(claims["nbf"], now) > now + leeway:
        raise _malformed("the token is not valid yet (nbf)")
    return AccessClaims(user_id, session_id, issued_at, expires_at, token_id)


def _malformed(why: str) -> Unauthenticated:
    return Unauthenticated(f"access token claims are malformed: {why}", reason=Reason.TOKEN_INVALID)


def _user_id(value: object) -> int:
    """``sub``: the decimal text of a user id in 1..2^63-1, as we issue it."""
    if not isinstance(value, str) or not _USER_ID.fullmatch(value) or int(value) > INT64_MAX:
        raise _malformed("sub must be a user id")
    return int(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CLAIM_CHARS:
        raise _malformed(f"sid and jti must be 1..{MAX_ID_CLAIM_CHARS} characters")
    return value


def _time(value: object, now: float) -> int:
    """A NumericDate (whole seconds, as we issue them) between 0 and a day from ``now``:
    far enough to accept every token we sign, near enough that no later arithmetic (ms,
    protobuf int64) can overflow."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed("iat, exp and nbf must be integers")
    if not 0 <= value <= now + MAX_TOKEN_LIFETIME_SECONDS + CLOCK_SKEW_LIMIT_SECONDS:
        raise _malformed("a time claim is out of range")
    return value


def keyring_lookup(jwks: Sequence[Mapping[str, str]]) -> dict[str, ec.EllipticCurvePublicKey]:
    """Index a JWKS by kid, skipping entries we cannot use."""
    found: dict[str, ec.EllipticCurvePublicKey] = {}
    for jwk in jwks:
        try:
            found[jwk["kid"]] = public_key_from_jwk(jwk)
        except (KeyError, ValueError):
            continue
    return found
