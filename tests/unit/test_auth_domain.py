"""Pure auth rules: field validation, refresh verdicts, token issue and verify with `now`."""

from __future__ import annotations

import pytest

from auth_service.domain import accounts
from auth_service.domain.refresh import RefreshRecord, RefreshVerdict, judge
from svckit.config import Config
from svckit.errors import InvalidField, Unauthenticated
from svckit.tokens import SigningKey, TokenIssuer, TokenVerifier, public_jwk, public_key_from_jwk


def _record(**changes: object) -> RefreshRecord:
    base = {
        "session_id": "s",
        "user_id": 1,
        "generation": 1,
        "expires_at_ms": 10_000,
        "rotated_at_ms": None,
        "session_revoked": False,
        "newest_generation": 1,
    }
    return RefreshRecord(**(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "now", "verdict"),
    [
        (_record(), 5_000, RefreshVerdict.ROTATE),
        (_record(), 10_000, RefreshVerdict.EXPIRED),
        (_record(rotated_at_ms=4_000, newest_generation=2), 5_000, RefreshVerdict.GRACE_RETRY),
        (_record(rotated_at_ms=4_000, newest_generation=2), 5_001, RefreshVerdict.REUSED),
        # Inside the window, but the successor was used (or a retry replaced it): theft.
        (_record(rotated_at_ms=4_000, newest_generation=3), 4_500, RefreshVerdict.REUSED),
        (_record(session_revoked=True), 5_000, RefreshVerdict.SESSION_REVOKED),
    ],
)
def test_refresh_verdicts(record: RefreshRecord, now: int, verdict: RefreshVerdict) -> None:
    """Valid, expired, one retry in the grace window, reuse after it or past a used successor."""
    assert verdict == judge(record, now, grace_ms=1_000)


def test_email_is_trimmed_and_case_preserved() -> None:
    """Emails keep their case (matching is case-insensitive in storage)."""
    assert "Ann@Example.org" == accounts.normalize_email("  Ann@Example.org ")


@pytest.mark.parametrize("bad", ["a@b", "@x.org", "a b@x.org", "a@@x.org", "x" * 250 + "@x.org"])
def test_bad_emails(bad: str) -> None:
    """Malformed addresses are INVALID_FIELD email."""
    with pytest.raises(InvalidField):
        accounts.normalize_email(bad)


def test_password_bounds_are_bytes_not_characters() -> None:
    """8..72 bytes of UTF-8: 36 two-byte characters pass, 37 fail, 7 ASCII fail."""
    assert 72 == len(accounts.validate_password("é" * 36))
    for bad in ("é" * 37, "1234567"):
        with pytest.raises(InvalidField):
            accounts.validate_password(bad)


def test_display_name_rules() -> None:
    """Trimmed, 1..64 characters, no control characters."""
    assert "Zoë" == accounts.normalize_display_name("  Zoë ")
    for bad in ("", "   ", "x" * 65, "a\u0000b", "bell\u0007"):
        with pytest.raises(InvalidField):
            accounts.normalize_display_name(bad)


def test_default_bcrypt_cost_is_12() -> None:
    """Passwords are hashed at cost 12 unless configured otherwise."""
    assert 12 == Config.from_environ({}).auth.bcrypt_cost


def _pair() -> tuple[TokenIssuer, TokenVerifier, SigningKey]:
    key = SigningKey.generate("k1")
    keys = {"k1": public_key_from_jwk(public_jwk("k1", key.private_key.public_key()))}
    issuer = TokenIssuer(key, issuer="minitg", audience="minitg", ttl_seconds=900)
    return (
        issuer,
        TokenVerifier(keys.get, issuer="minitg", audience="minitg", leeway_seconds=30),
        key,
    )


def test_token_round_trip_and_expiry_with_leeway() -> None:
    """A token verifies until exp + leeway and not after, judged at the given `now`."""
    issuer, verifier, _ = _pair()
    token, expires_at = issuer.issue(7, "sess", now=1_000_000)
    claims = verifier.verify(token, now=1_000_100)
    assert (7, "sess", expires_at) == (claims.user_id, claims.session_id, claims.expires_at)
    assert verifier.verify(token, now=expires_at + 30).user_id == 7
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token, now=expires_at + 31)
    assert "TOKEN_EXPIRED" == caught.value.reason


def test_token_from_the_future_is_rejected() -> None:
    """A token whose iat is beyond the leeway is invalid (clock skew attack)."""
    issuer, verifier, _ = _pair()
    token, _ = issuer.issue(7, "sess", now=2_000_000)
    with pytest.raises(Unauthenticated):
        verifier.verify(token, now=1_000_000)


def test_rotation_newest_signs_all_verify() -> None:
    """With two keys in the set, tokens from either verify; unknown kids do not."""
    old, new = SigningKey.generate("2025"), SigningKey.generate("2026")
    keys = {k.kid: k.private_key.public_key() for k in (old, new)}
    verifier = TokenVerifier(keys.get, issuer="i", audience="a")
    for key in (old, new):
        token, _ = TokenIssuer(key, issuer="i", audience="a", ttl_seconds=60).issue(1, "s", 100)
        assert 1 == verifier.verify(token, now=100).user_id
    stranger = SigningKey.generate("x")
    token, _ = TokenIssuer(stranger, issuer="i", audience="a", ttl_seconds=60).issue(1, "s", 100)
    with pytest.raises(Unauthenticated):
        verifier.verify(token, now=100)
