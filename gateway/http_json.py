"""Reading JSON request bodies with clear errors.

Malformed JSON or a body that is not an object is 400 MALFORMED_REQUEST; a field of the
wrong type or a missing required field is 422 INVALID_FIELD naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from svckit.errors import InvalidArgument, InvalidField


async def read_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object ({} for an empty body when allowed)."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument("the request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    """A string field; absent optional fields are ''."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidField(name, f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidField(name, f"{name} must be a string")
    return value


def int_param(request: web.Request, name: str, *, default: int = 0) -> int:
    """An integer query parameter (or path segment) with a 422 naming it when malformed."""
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidField(name, f"{name} must be an integer") from None
