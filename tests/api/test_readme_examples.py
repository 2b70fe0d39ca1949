"""The README's examples run as printed: the curl walkthrough and the reference client program.

Each block is taken from README.md as it is, its address swapped for a running embedded
system's (what ``make run`` serves), and run in its own process, so the README cannot rot.
Embedded only: the examples are written for ``make run``, and the REST and WebSocket
behaviour they touch is pinned on both shapes by the other api tests.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.harness import running_system

REPO = Path(__file__).resolve().parents[2]
README_ADDRESS = "127.0.0.1:8080"


def readme_block(language: str, marker: str) -> str:
    """The one fenced ``language`` block of README.md that contains ``marker``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)
    found = [block for block in blocks if marker in block]
    assert 1 == len(found), f"README.md has {len(found)} {language} blocks with {marker!r}"
    return found[0]


async def run(args: list[str], script: str, timeout: float = 120) -> tuple[int, str]:
    """Run ``args`` with ``script`` on stdin from the repo root; its exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(script.encode()), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_curl_walkthrough_runs_as_printed(tmp_path: Path) -> None:
    """Every call of the README's curl walkthrough succeeds in order, logout last (204)."""
    block = readme_block("sh", "H=http://127.0.0.1:8080")
    async with running_system("embedded", tmp_path) as system:
        address = system.http_url.removeprefix("http://")
        script = "set -eo pipefail\n" + block.replace(README_ADDRESS, address)
        code, out = await run(["bash"], script)
    assert 0 == code, out
    lines = out.splitlines()
    assert "204" == lines[-1], out  # the logout
    assert 2 == lines.count("204"), out  # the session revoke and the logout
    assert '"email": "ann@example.org"' in out, out  # /v1/users/me
    assert out.count('"display_name": "Bob"') >= 2, out  # Bob by id and by email
    assert '"kind": "CHAT_KIND_DIRECT"' in out, out
    assert '"keys"' in out, out


async def test_client_program_runs_as_printed(tmp_path: Path) -> None:
    """The README's tgclient program sends a message that the other user receives live."""
    block = readme_block("python", "from tgclient import")
    async with running_system("embedded", tmp_path) as system:
        address = system.http_url.removeprefix("http://")
        code, out = await run([sys.executable, "-"], block.replace(README_ADDRESS, address))
    assert 0 == code, out
    assert "1 hello" == out.strip(), out
