"""Reading JSON request bodies and query/path integers with clear errors.

Malformed JSON, a body that is not an object, nesting deeper than ``MAX_JSON_DEPTH``, a
string holding a lone UTF-16 surrogate (``"\\ud800"``: no UTF-8 encoding, so no protobuf
field can carry it) or a non-finite number is 400 MALFORMED_REQUEST; a field of the wrong
type, a missing required field or an integer outside its field's range (every id is an
int64) is 422 INVALID_FIELD naming the field.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from aiohttp import web

from svckit.errors import InvalidArgument, InvalidField

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# No request body of this API nests more than three levels; 32 leaves room and keeps every
# walk over a body far from Python's recursion limit.
MAX_JSON_DEPTH = 32
# ASCII digits only (int() would also take "+1", " 1", "1_000" and other scripts' digits);
# longer than any int64, so the range check below names the field.
_INTEGER = re.compile(r"-?[0-9]{1,30}")


async def read_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object ({} for an empty body when allowed)."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument("the request body must be a JSON object")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:  # the C decoder's own guard against deep nesting
        _too_deep()
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    _check_values(body)
    return body


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _too_deep() -> NoReturn:
    raise InvalidArgument(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None


def _check_values(body: dict[str, Any]) -> None:
    """Depth and string checks over the whole parsed body, without recursion."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            check_text("the request body", value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                _too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    check_text("the request body", key)
                pending.append((item, depth + 1))


def check_text(where: str, text: str) -> str:
    """``text`` when it is encodable as UTF-8, else 400 MALFORMED_REQUEST naming ``where``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{where} holds a lone UTF-16 surrogate") from None
    return text


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


def int_value(
    value: object, name: str, *, minimum: int = INT64_MIN, maximum: int = INT64_MAX
) -> int:
    """A JSON integer (never a bool or a float such as 1e22) within ``minimum..maximum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidField(name, f"{name} must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidField(name, f"{name} must be between {minimum} and {maximum}")
    return value


def id_value(value: object, name: str) -> int:
    """A JSON id: an integer in 1..2^63-1."""
    return int_value(value, name, minimum=1)


def int_param(
    request: web.Request,
    name: str,
    *,
    default: int = 0,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int:
    """An integer query parameter (or path segment) with a 422 naming it when malformed
    or outside ``minimum..maximum`` (an int64 unless the field says otherwise)."""
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise InvalidField(name, f"{name} must be an integer")
    return int_value(int(raw), name, minimum=minimum, maximum=maximum)


def page_size_param(request: web.Request) -> int:
    """``page_size`` (an int32 in every request message; the service clamps and rejects)."""
    return int_param(request, "page_size", minimum=INT32_MIN, maximum=INT32_MAX)
