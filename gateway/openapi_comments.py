"""The proto comments of messages and fields, for the OpenAPI document's descriptions.

The generated Python descriptors carry no comments, but the type stubs mypy-protobuf writes
next to them (``*_pb2.pyi``, shipped as package data) hold every message comment as the
class docstring and every field comment as the string after the field's annotation. Reading
those with ``ast`` keeps the proto files the one place a field is documented.
"""

from __future__ import annotations

import ast
import functools
import importlib.resources

from google.protobuf.descriptor import Descriptor


def message_comment(descriptor: Descriptor) -> str:
    return _comments(descriptor.file.name).get(_local_name(descriptor), "")


def field_comment(descriptor: Descriptor, field_name: str) -> str:
    return _comments(descriptor.file.name).get(f"{_local_name(descriptor)}.{field_name}", "")


def rpc_comment(request: Descriptor) -> tuple[str, str]:
    """(``AuthService.Register``, its comment) for the RPC of ``request``'s file that takes
    it; ("", "") when none does."""
    for service in request.file.services_by_name.values():
        for method in service.methods:
            if method.input_type is request:
                stubs = _comments(request.file.name, "_pb2_grpc.pyi")
                comment = stubs.get(f"{service.name}Servicer.{method.name}", "")
                return f"{service.name}.{method.name}", comment
    return "", ""


def _local_name(descriptor: Descriptor) -> str:
    """``Outer.Inner`` for ``minitg.chat.v1.Outer.Inner``."""
    return descriptor.full_name.removeprefix(descriptor.file.package + ".")


@functools.cache
def _comments(proto_file: str, stub: str = "_pb2.pyi") -> dict[str, str]:
    """``{"Message": doc, "Message.field": doc, "Outer.Inner.field": doc}`` of one proto
    file, from its stub (``{"Servicer.Method": doc}`` from the gRPC stub); empty when the
    stub is not installed."""
    package, _, stem = proto_file.removesuffix(".proto").rpartition("/")
    try:
        source = (importlib.resources.files(package.replace("/", ".")) / f"{stem}{stub}").read_text(
            encoding="utf-8"
        )
    except (ModuleNotFoundError, FileNotFoundError):
        return {}
    found: dict[str, str] = {}
    _walk(ast.parse(source).body, "", found)
    return found


def _walk(body: list[ast.stmt], prefix: str, found: dict[str, str]) -> None:
    for index, node in enumerate(body):
        if isinstance(node, ast.ClassDef):
            name = prefix + node.name
            found[name] = _clean(ast.get_docstring(node) or "")
            _walk(node.body, name + ".", found)
        elif isinstance(node, ast.FunctionDef) and prefix:
            found[prefix + node.name] = _clean(ast.get_docstring(node) or "")
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and prefix:
            following = body[index + 1] if index + 1 < len(body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[prefix + node.target.id] = _clean(following.value.value)


def _clean(text: str) -> str:
    """One paragraph per blank-line-separated block, inner line breaks joined."""
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)
