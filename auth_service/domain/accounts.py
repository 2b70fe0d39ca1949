"""Account rules: what a valid email, password, display name and device name are.

Pure functions; each raises ``InvalidField`` naming the field, which the gateway answers
with 422 INVALID_FIELD.
"""

from __future__ import annotations

import re
import unicodedata

from svckit.errors import InvalidField

PASSWORD_MIN_BYTES = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores everything past 72 bytes: reject, never truncate
DISPLAY_NAME_MAX = 64
DEVICE_NAME_MAX = 64
EMAIL_MAX = 254
DEFAULT_DEVICE_NAME = "unnamed device"

# Deliberately simple (RFC 5321 lengths, one @, a dot in the domain, no spaces): we check
# shape here and ownership by sending mail, never by a cleverer regular expression.
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


# Characters no address may hold: controls (Cc: NUL, newlines), format characters (Cf:
# zero-width U+200B-U+200F, bidi overrides U+202A-U+202E and isolates U+2066-U+2069, BOM),
# line/paragraph separators and surrogates. They make two addresses that look the same
# ("ad\u200bmin@...") or one that reads backwards in a member list.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def normalize_email(raw: str) -> str:
    """The email as stored: NFC, case preserved, surrounding spaces removed."""
    email = unicodedata.normalize("NFC", raw.strip())
    if not email:
        raise InvalidField("email", "email is required")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in email):
        raise InvalidField("email", "email must not contain control or invisible characters")
    if len(email) > EMAIL_MAX or not _EMAIL_RE.match(email):
        raise InvalidField("email", "email is not a valid address")
    return email


def email_key(email: str) -> str:
    """What makes two addresses one account: Unicode caseless matching of the NFC form
    (full case folding, so ``Ärger@x.org`` and ``ärger@x.org`` are one, as are ``ß`` and
    ``ss``). Computed here, not by the database, so PostgreSQL and SQLite agree."""
    folded = unicodedata.normalize("NFD", email).casefold()
    return unicodedata.normalize("NFC", folded)


def lookup_key(raw: str) -> str | None:
    """The key of an address typed at login or lookup; None when it cannot be an address
    (the caller answers as for an unknown one)."""
    try:
        return email_key(normalize_email(raw))
    except InvalidField:
        return None


def validate_password(password: str) -> bytes:
    """The password's UTF-8 bytes, when 8..72 bytes long."""
    encoded = password.encode("utf-8", errors="strict")
    if len(encoded) < PASSWORD_MIN_BYTES:
        raise InvalidField("password", f"password must be at least {PASSWORD_MIN_BYTES} bytes")
    if len(encoded) > PASSWORD_MAX_BYTES:
        raise InvalidField(
            "password", f"password must be at most {PASSWORD_MAX_BYTES} bytes of UTF-8"
        )
    return encoded


def normalize_display_name(raw: str) -> str:
    """1..64 characters after trimming, without control characters."""
    name = raw.strip()
    if not name:
        raise InvalidField("display_name", "display_name is required")
    if len(name) > DISPLAY_NAME_MAX:
        raise InvalidField(
            "display_name", f"display_name must be at most {DISPLAY_NAME_MAX} characters"
        )
    if _has_control(name):
        raise InvalidField("display_name", "display_name must not contain control characters")
    return name


def normalize_device_name(raw: str) -> str:
    """A device label: optional, trimmed, at most 64 characters."""
    name = raw.strip()
    if not name:
        return DEFAULT_DEVICE_NAME
    if len(name) > DEVICE_NAME_MAX or _has_control(name):
        raise InvalidField(
            "device_name", f"device_name must be at most {DEVICE_NAME_MAX} printable characters"
        )
    return name


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in text)
