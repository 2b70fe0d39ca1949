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
from typing import Any, NoReturn, TypeVar, cast

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

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


def int_value(
    value: object, name: str, *, minimum: int = INT64_MIN, maximum: int = INT64_MAX
) -> int:
    """A JSON integer (never a bool or a float such as 1e22) within ``minimum..maximum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidField(name, f"{name} must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidField(name, f"{name} must be between {minimum} and {maximum}")
    return value


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


# --- The proto3 JSON mapping, with minitg's two documented deviations ------------------
# Requests: a field is found by its proto name (snake_case) or its lowerCamelCase JSON
# name, as proto3 JSON parsers must; 64-bit integers are JSON numbers or decimal strings.
# Responses print proto names and 64-bit integers as JSON numbers (every id minitg issues
# is below 2^53). Hand-written rather than json_format.ParseDict because ParseDict takes
# "1_000", " 1" and 1.0 as integers and its errors name no field, while the error contract
# is 422 INVALID_FIELD with the field's name in metadata.
_FD = FieldDescriptor
_INT32_TYPES = (_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32)
_INT64_TYPES = (_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64)

M = TypeVar("M", bound=Message)


def parse_message(body: dict[str, Any], message: M, *, required: tuple[str, ...] = ()) -> M:
    """Fill ``message`` from a JSON object; unknown keys are ignored (forward compatible).

    Each name in ``required`` must be present (under either of its names).
    """
    for field in cast("list[FieldDescriptor]", message.DESCRIPTOR.fields):
        value = body.get(field.name, body.get(field.json_name))
        if value is None:
            if field.name in required:
                raise InvalidField(field.name, f"{field.name} is required")
            continue
        if field.is_repeated:
            if not isinstance(value, list):
                raise InvalidField(field.name, f"{field.name} must be a list")
            getattr(message, field.name).extend(_scalar(field, v) for v in value)
        else:
            setattr(message, field.name, _scalar(field, value))
    return message


def _scalar(field: FieldDescriptor, value: object) -> object:
    name = field.name
    if field.type == _FD.TYPE_STRING:
        if not isinstance(value, str):
            raise InvalidField(name, f"{name} must be a string")
        return value
    if field.type == _FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise InvalidField(name, f"{name} must be true or false")
        return value
    if field.type == _FD.TYPE_ENUM:
        return _enum(field, value)
    if field.type in _INT32_TYPES:
        return int_value(_number(value, name), name, minimum=INT32_MIN, maximum=INT32_MAX)
    if field.type in _INT64_TYPES:
        return int_value(_number(value, name), name)
    raise InvalidField(name, f"{name} cannot be set over REST")


def _number(value: object, name: str) -> object:
    """A decimal string is the number it spells (proto3 JSON's int64 form)."""
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise InvalidField(name, f"{name} must be an integer")
        return int(value)
    return value


def _enum(field: FieldDescriptor, value: object) -> int:
    enum = field.enum_type
    assert enum is not None
    if isinstance(value, str) and value in enum.values_by_name:
        return int(enum.values_by_name[value].number)
    if type(value) is int and value in enum.values_by_number:
        return value
    names = ", ".join(v.name for v in enum.values if v.number)
    raise InvalidField(field.name, f"{field.name} must be one of {names}")


def message_json(message: Message) -> dict[str, Any]:
    """A response message's JSON: proto names, every field printed, int64 as numbers."""
    return json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )


def message_response(
    message: Message, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(message_json(message), status=status, headers=headers)
