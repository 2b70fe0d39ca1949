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


def normalize_email(raw: str) -> str:
    """The email as stored (case preserved, surrounding spaces removed)."""
    email = raw.strip()
    if not email:
        raise InvalidField("email", "email is required")
    if len(email) > EMAIL_MAX or not _EMAIL_RE.match(email):
        raise InvalidField("email", "email is not a valid address")
    return email


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
