"""The project's docs point only inside the project, and the architecture doc names real code.

A clone of the repository is all a reader has, so a relative link must land on a file in
it; and docs/ARCHITECTURE.md names files and tests that other changes move or rename, so
every one it names must exist (and its send path stays within six files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "node_modules", "gen", "var", "results", "minitg.egg-info"}
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
# A markdown link's target: [text](target) or [text](target "title").
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A repository path to a source file as the docs write it: gateway/relays.py, tests/x.py::test_y
CODE_PATH = re.compile(r"\b((?:[\w.-]+/)+[\w.-]+\.(?:py|proto|md|yaml))(?:::(\w+))?")


def repo_files(suffixes: set[str]) -> list[Path]:
    """The repo's own files with one of ``suffixes`` (generated and vendored trees pruned)."""
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(root, name) for name in files if Path(name).suffix in suffixes]
    return sorted(found)


def markdown_files() -> list[Path]:
    return repo_files({".md"})


def test_relative_links_land_on_files_inside_the_repo() -> None:
    """Every relative link in the repo's markdown resolves to an existing path inside it."""
    broken = []
    for doc in markdown_files():
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL (http:, mailto:) or an anchor in the same page
            resolved = (doc.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert [] == broken


def test_no_file_points_to_docs_outside_the_repo() -> None:
    """No source, doc or manifest refers to the design notes that live outside the repo."""
    outside = ("../shared/", "DESIGN.md")
    suffixes = {".md", ".py", ".proto", ".yaml", ".yml", ".sh", ".toml", ".cfg"}
    found = []
    for path in repo_files(suffixes):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(REPO)}: {name}" for name in outside if name in text]
    assert [] == found


def test_architecture_names_only_existing_files_and_tests() -> None:
    """Each file ARCHITECTURE.md names exists, and each test it names is defined there."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = []
    for path, test in CODE_PATH.findall(text):
        candidates = [REPO / path, ARCHITECTURE.parent / path]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            missing.append(path)
        elif test and not re.search(rf"def {test}\(", found.read_text(encoding="utf-8")):
            missing.append(f"{path}::{test}")
    assert [] == missing


def test_architecture_send_path_names_at_most_six_files() -> None:
    """The send path diagram goes from frame in to push out through at most six files."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## The send path", 1)[1].split("\n## ", 1)[0]
    diagram = section.split("```", 2)[1]
    named = {path for path, _ in CODE_PATH.findall(diagram)}
    assert 1 <= len(named) <= 6, sorted(named)
    assert "device A" in diagram and "device B" in diagram  # from frame in to push out
