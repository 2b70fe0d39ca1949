"""The error catalogue in code (svckit.reasons.Reason) is the table in proto/README.md, and
no non-test code spells a reason as a string literal."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from svckit.errors import AlreadyExists, DomainError, FailedPrecondition
from svckit.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("svckit", "gateway", "auth_service", "chat_service", "presence_service")
# Code that speaks to a server: it must use the same names (tgclient, the load tool).
CHECKED_DIRS = (*SERVER_PACKAGES, "tgclient", "load", "scripts")
_ROW = re.compile(r"^\| `([A-Z_]+)` \| ([A-Z_]+) \| (\d{3}) \| (.+) \|$")


def _table() -> dict[str, tuple[str, int, str]]:
    text = (ROOT / "proto" / "README.md").read_text()
    section = text[text.index("### Reasons") : text.index("### Retrying")]
    rows = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            name, code, http, meaning = match.groups()
            rows[name] = (code, int(http), meaning)
    return rows


def test_the_readme_table_is_the_enum() -> None:
    """Every row of proto/README.md's reason table is a Reason with that code, HTTP status
    and meaning, in the same order, and every Reason has a row."""
    in_code = {r.value: (r.code.name, r.http_status, r.meaning) for r in Reason}
    table = _table()
    assert list(in_code.items()) == list(table.items())


def test_each_reason_is_its_own_name() -> None:
    """A reason's wire value is its name, UPPER_SNAKE."""
    assert [] == [r.name for r in Reason if r.value != r.name or not r.name.isupper()]


def _sources() -> Iterator[Path]:
    for top in CHECKED_DIRS:
        yield from (ROOT / top).rglob("*.py")


def _literal_reasons(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of each reason written as a string literal: ``reason="X"`` keyword,
    ``reason = "X"`` assignment, ``x.reason == "X"`` comparison."""

    def is_text(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str)

    def names_reason(node: ast.AST) -> bool:
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return name == "reason"

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "reason" and is_text(node.value):
            yield node.value.lineno, ast.unparse(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and is_text(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(names_reason(t) for t in targets):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(names_reason(s) for s in sides) and any(is_text(s) for s in sides):
                yield node.lineno, ast.unparse(node)


def test_no_reason_is_a_string_literal() -> None:
    """Non-test code names reasons as Reason.X, never as a "X" literal."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in _sources()
        for line, text in _literal_reasons(ast.parse(path.read_text(), str(path)))
    ]
    assert [] == found


def test_the_literal_finder_finds_literals() -> None:
    """The scan above sees each literal form (so its empty answer means something)."""
    source = 'raise E("m", reason="X")\nclass C:\n    reason = "Y"\nif e.reason == "Z": pass\n'
    assert [1, 3, 4] == sorted(line for line, _ in _literal_reasons(ast.parse(source)))


def _domain_errors() -> Iterator[type[DomainError]]:
    for top in SERVER_PACKAGES:
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            importlib.import_module(info.name)
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        yield cls
        pending.extend(cls.__subclasses__())


@pytest.mark.timeout(60)
def test_every_domain_error_class_has_its_reasons_code() -> None:
    """Each DomainError class's reason is in the catalogue, with the code it declares
    (AlreadyExists and FailedPrecondition are families: raised with a reason or a subclass)."""
    wrong = [
        f"{cls.__module__}.{cls.__qualname__}: {cls.reason} {cls.code.name}"
        for cls in _domain_errors()
        if cls not in (AlreadyExists, FailedPrecondition)
        and (cls.reason not in Reason.__members__ or Reason(cls.reason).code != cls.code)
    ]
    assert grpc.StatusCode.INTERNAL == DomainError.code
    assert [] == wrong


def test_the_readme_goodbye_reasons_are_the_gateways() -> None:
    """The Goodbye reasons and close codes proto/README.md lists are the ones the gateway
    sends (gateway.ws_hub.GOODBYE_REASONS), no more, no fewer."""
    from gateway.ws_hub import GOODBYE_REASONS

    text = (ROOT / "proto" / "README.md").read_text()
    paragraph = text[text.index("Not error reasons:") : text.index("### Retrying")]
    listed = {int(code): name for name, code in re.findall(r"`([A-Z_]+)`\s+\((\d{4})\)", paragraph)}
    assert dict(GOODBYE_REASONS) == listed
