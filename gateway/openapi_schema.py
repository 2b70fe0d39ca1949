"""JSON Schema (OpenAPI 3.1 dialect) for proto messages, by minitg's REST JSON mapping.

The REST API speaks the proto3 JSON mapping of the services' messages with proto field
names (snake_case) and two documented deviations (see ``gateway.http_json``): 64-bit
integers print as JSON numbers, and requests also accept them as decimal strings. Answers
print every field, so each field outside a oneof and not a message is required in a
response schema; request schemas list only the fields the route requires.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.openapi_comments import field_comment, message_comment

Schema = dict[str, Any]

_FD = FieldDescriptor
_INT32 = (_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32)
_INT64 = (_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64)
_UINT32 = (_FD.TYPE_UINT32, _FD.TYPE_FIXED32)
_UINT64 = (_FD.TYPE_UINT64, _FD.TYPE_FIXED64)
_FLOATS = (_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE)
_DECIMAL = "^-?[0-9]{1,19}$"


def component_name(descriptor: Descriptor) -> str:
    """``chat.v1.Chat`` for ``minitg.chat.v1.Chat``: unique across packages, short."""
    return descriptor.full_name.removeprefix("minitg.")


def ref(descriptor: Descriptor) -> Schema:
    return {"$ref": f"#/components/schemas/{component_name(descriptor)}"}


class SchemaSet:
    """Response schemas of messages, collected once each as named components."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def response(self, descriptor: Descriptor) -> Schema:
        """A ``$ref`` to the message's response schema, adding it (and what it nests)."""
        name = component_name(descriptor)
        if name not in self.components:
            self.components[name] = {}  # reserved first: messages may nest themselves
            self.components[name] = self._message(descriptor)
        return ref(descriptor)

    def _message(self, descriptor: Descriptor) -> Schema:
        properties = {
            f.name: _described(self._field(f), field_comment(descriptor, f.name))
            for f in descriptor.fields
        }
        required = [
            f.name
            for f in descriptor.fields
            if f.containing_oneof is None
            and (f.is_repeated or f.type not in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP))
        ]
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        notes = [message_comment(descriptor)] + [
            f"Exactly one of {', '.join(f.name for f in o.fields)} is set."
            for o in descriptor.oneofs
            if o.fields
        ]
        return _described(schema, "\n\n".join(n for n in notes if n))

    def _field(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        single = self._single(field)
        return {"type": "array", "items": single} if field.is_repeated else single

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
            assert field.message_type is not None
            return self.response(field.message_type)
        return scalar(field, request=False)


def scalar(field: FieldDescriptor, *, request: bool) -> Schema:
    """A scalar field's schema; requests take 64-bit integers as numbers or decimal strings."""
    kind = field.type
    if kind == _FD.TYPE_STRING:
        return {"type": "string"}
    if kind == _FD.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == _FD.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    if kind == _FD.TYPE_ENUM:
        assert field.enum_type is not None
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    if kind in _FLOATS:
        return {"type": "number"}
    if kind in _INT32:
        return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    if kind in _UINT32:
        return {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
    fmt = "int64" if kind in _INT64 else "uint64"
    number: Schema = {"type": "integer", "format": fmt}
    if kind in _INT64:
        number |= {"minimum": -(2**63), "maximum": 2**63 - 1}
    if not request:
        return number
    return {"anyOf": [number, {"type": "string", "pattern": _DECIMAL}]}


def request_body(
    descriptor: Descriptor, *, required: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> Schema:
    """The JSON body of a request message: its scalar and repeated scalar fields except
    ``exclude`` (the ones the path carries)."""
    properties: dict[str, Schema] = {}
    for field in descriptor.fields:
        if field.name in exclude or field.message_type is not None:
            continue
        single = scalar(field, request=True)
        properties[field.name] = _described(
            {"type": "array", "items": single} if field.is_repeated else single,
            field_comment(descriptor, field.name),
        )
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "description": (
            f"{descriptor.name}: {message_comment(descriptor)}\n\nFields may also be given "
            "by their lowerCamelCase JSON names; unknown fields are ignored; null is the "
            "field's default."
        ),
    }
    if required:
        schema["required"] = list(required)
    return schema


def _described(schema: Schema, text: str) -> Schema:
    return schema | {"description": text} if text else schema
