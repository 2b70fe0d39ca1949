"""The close-code tables of docs/PROTOCOL.md and frames.proto say what the gateway sends."""

from __future__ import annotations

import re
from pathlib import Path

from minitg.gateway.v1 import frames_pb2

from gateway.ws_hub import GOODBYE_REASONS

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text()
FRAMES = (ROOT / "proto" / "minitg" / "gateway" / "v1" / "frames.proto").read_text()


def _markdown_rows() -> dict[int, tuple[str, str]]:
    rows = re.findall(r"^\| (\d{4}) \| ([A-Z_]+) \| (.*) \|$", PROTOCOL, re.MULTILINE)
    return {int(code): (reason, meaning) for code, reason, meaning in rows}


def _proto_rows() -> dict[int, tuple[str, str]]:
    rows = re.findall(r"^//   (\d{4})  ([A-Z_]+) +(.*)$", FRAMES, re.MULTILINE)
    return {int(code): (reason, meaning) for code, reason, meaning in rows}


def test_both_tables_list_every_code_with_its_goodbye_reason() -> None:
    """Each table maps exactly the CloseCode values to the Goodbye reasons the hub sends."""
    sent = {int(code): reason for code, reason in GOODBYE_REASONS.items()}
    codes = {v.number for v in frames_pb2.CloseCode.DESCRIPTOR.values if v.number}
    assert codes == set(sent)
    assert sent == {code: reason for code, (reason, _) in _markdown_rows().items()}
    assert sent == {code: reason for code, (reason, _) in _proto_rows().items()}


def test_signing_out_is_4001_in_both_tables_never_1000() -> None:
    """Logout and session revocation are documented as 4001 only (the server's code)."""
    for rows in (_markdown_rows(), _proto_rows()):
        assert "log" not in rows[1000][1] and "sign" not in rows[1000][1]
        assert re.search(r"signed out|logged out", rows[4001][1])
