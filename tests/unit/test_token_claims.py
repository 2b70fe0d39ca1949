"""The token verifier bounds every claim it hands on, even in tokens our own key signed."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from svckit.errors import Unauthenticated
from svckit.tokens import ALGORITHM, TOKEN_TYPE, SigningKey, TokenVerifier

NOW = 1_800_000_000
KEY = SigningKey.generate("k1")
VERIFIER = TokenVerifier(
    {"k1": KEY.private_key.public_key()}.get, issuer="minitg", audience="minitg"
)


def _token(**changes: Any) -> str:
    claims = {
        "iss": "minitg",
        "aud": "minitg",
        "sub": "7",
        "sid": "sess",
        "iat": NOW,
        "exp": NOW + 900,
        "jti": "j1",
    } | changes
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": "k1", "typ": TOKEN_TYPE}
    return jwt.encode(claims, KEY.private_key, algorithm=ALGORITHM, headers=headers)


def test_an_ordinary_token_verifies() -> None:
    """The claims we issue pass and come back as they were signed."""
    claims = VERIFIER.verify(_token(), NOW + 1)
    assert (7, "sess", NOW, NOW + 900, "j1") == (
        claims.user_id,
        claims.session_id,
        claims.issued_at,
        claims.expires_at,
        claims.token_id,
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": 2**63},
        {"exp": 2**64 + 1},
        {"exp": 1e30},
        {"exp": float(NOW + 900)},
        {"exp": NOW + 86_400 + 301},
        {"exp": NOW},
        {"iat": -1},
        {"iat": True},
        {"iat": "1800000000"},
        {"nbf": NOW + 3600},
        {"nbf": 2**63},
        {"sub": str(2**63)},
        {"sub": "0"},
        {"sub": "-1"},
        {"sub": "007"},
        {"sub": " 7"},
        {"sub": 7},
        {"sid": ""},
        {"sid": ["x"]},
        {"jti": "j" * 129},
    ],
    ids=repr,
)
def test_out_of_range_claims_are_token_invalid(changes: dict[str, Any]) -> None:
    """A signed token whose claims are out of range or of the wrong type is TOKEN_INVALID."""
    with pytest.raises(Unauthenticated) as caught:
        VERIFIER.verify(_token(**changes), NOW + 1)
    assert "TOKEN_INVALID" == caught.value.reason


def test_largest_user_id_and_a_day_long_token_verify() -> None:
    """The bounds are inclusive: user id 2^63-1 and a lifetime of exactly a day pass."""
    claims = VERIFIER.verify(_token(sub=str(2**63 - 1), exp=NOW + 86_400), NOW + 1)
    assert (2**63 - 1, NOW + 86_400) == (claims.user_id, claims.expires_at)
