"""AIP-158 page sizes and opaque page tokens.

A page token is the base64url of a small JSON object (a keyset cursor); clients treat it
as opaque. A token that does not decode is INVALID_FIELD ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from svckit.errors import InvalidField


def clamp_page_size(requested: int, *, default: int, maximum: int) -> int:
    """0 means the default; negative is an error; above the maximum is clamped."""
    if requested < 0:
        raise InvalidField("page_size", "page_size must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def encode_page_token(cursor: dict[str, Any]) -> str:
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_page_token(token: str) -> dict[str, Any]:
    """The cursor inside ``token``; an empty token is the first page ({})."""
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidField("page_token", "page_token is not one this server issued") from None
    if not isinstance(cursor, dict):
        raise InvalidField("page_token", "page_token is not one this server issued")
    return cursor
