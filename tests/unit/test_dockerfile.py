"""The Dockerfile builds a small, non-root image whose entrypoint is the minitg command.

No container engine runs in CI, so this reads the Dockerfile instead of building it; the
wheel it installs is built and run for real by tests/e2e/test_wheel_install.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from svckit.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|python3?-dev|libc6?-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_stages(text: str) -> list[Stage]:
    """Dockerfile stages with their (KEYWORD, arguments) lines, continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, _, name = args.partition(" AS ") if " AS " in args else args.partition(" as ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def stages() -> list[Stage]:
    return parse_stages((REPO / "Dockerfile").read_text(encoding="utf-8"))


def test_two_stages_on_python_slim() -> None:
    """A builder stage and a final stage, both on python:3.11-slim."""
    builder, final = stages()
    assert "builder" == builder.name
    assert "python:3.11-slim" == final.base
    assert builder.base == final.base  # the venv's interpreter symlinks must resolve


def test_builder_builds_a_wheel_into_a_venv() -> None:
    """The builder has compilers, builds the project's wheel and installs it into /opt/venv."""
    builder, _ = stages()
    runs = " ".join(builder.all("RUN"))
    assert BUILD_TOOLS.search(runs)
    assert re.search(r"python -m venv /opt/venv", runs)
    assert re.search(r"pip wheel --no-deps .*\s\.(\s|$)", runs)
    assert re.search(r"/opt/venv/bin/pip install /wheels/minitg-\*\.whl", runs)


def test_final_stage_copies_only_the_venv() -> None:
    """No compilers and no sources in the final image: only the builder's venv."""
    _, final = stages()
    assert ["--from=builder /opt/venv /opt/venv"] == final.all("COPY")
    assert [] == final.all("ADD")
    for run in final.all("RUN"):
        assert "apt-get install" not in run and not BUILD_TOOLS.search(run), run
    assert any("/opt/venv/bin" in env for env in final.all("ENV"))


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    """USER is uid:gid 10001 (numeric, so runAsNonRoot can verify it), created in the image."""
    _, final = stages()
    assert ["10001:10001"] == final.all("USER")
    assert any("--uid 10001" in run for run in final.all("RUN"))
    assert ["/app"] == final.all("WORKDIR")


def test_entrypoint_is_minitg_and_cmd_parses() -> None:
    """ENTRYPOINT ["minitg"]; the default CMD is `serve --target all`, valid for the parser."""
    _, final = stages()
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert ["minitg"] == json.loads(entrypoint)
    argv = json.loads(cmd)
    assert ["serve", "--target", "all"] == argv
    args = build_parser().parse_args(argv)
    assert ("serve", "all") == (args.command, args.target)


def test_dockerignore_admits_every_package_and_nothing_else() -> None:
    """The build context holds pyproject, README and every package dir pyproject includes."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [p for p in (line.strip() for line in lines) if p and not p.startswith("#")]
    assert "*" == patterns[0], "an allow-list starts by excluding everything"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for where in pyproject["tool"]["setuptools"]["packages"]["find"]["where"]:
        root = REPO / where
        for child in sorted(root.iterdir()):
            is_package = child.is_dir() and any(child.rglob("*.py"))
            if is_package and any(fnmatch.fnmatch(child.name, pat) for pat in includes):
                top = child.relative_to(REPO).parts[0]
                assert top in admitted, f"{top}/ is packaged but not in the build context"
    assert {"pyproject.toml", "README.md"} <= admitted
    assert not admitted & {".venv", ".git", "var", "node_modules", "k8s"}
