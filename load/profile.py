"""``--profile DIR``: py-spy records every server process during the measured phase.

Each process gets ``DIR/<scenario>-<label>.txt`` (collapsed stacks, py-spy's ``raw``
format, sampled at 100 Hz without pausing the process) and ``python -m load.profile
DIR/x.txt`` prints the functions that own the most samples, self and inclusive. py-spy is
optional (``pip install py-spy``); without it profiling is skipped with a note.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


class Profiler:
    """py-spy recorders attached to ``pids`` until ``stop()`` (or ``seconds``)."""

    def __init__(self, directory: Path, name: str, pids: dict[str, int], seconds: float) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            print("profiling skipped: py-spy is not installed", file=sys.stderr)
            return
        directory.mkdir(parents=True, exist_ok=True)
        for label, pid in pids.items():
            out = directory / f"{name}-{label}.txt"
            self.procs.append(
                subprocess.Popen(
                    [spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking",
                     "--rate", "100", "--duration", str(int(seconds) + 1), "--output", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip

    def stop(self) -> None:
        """Let each recorder write its file (SIGINT), then reap it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(2)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def top(path: Path, count: int = 25) -> str:
    """The functions with the most samples in a collapsed-stack file (self and total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            total[frame] += int(n)
    lines = [f"{path.name}: {samples} samples", "self%  total%  function"]
    for frame, hits in own.most_common(count):
        share, inclusive = 100 * hits / samples, 100 * total[frame] / samples
        lines.append(f"{share:5.1f}  {inclusive:6.1f}  {frame}")
    lines.append("-- inclusive --")
    for frame, hits in total.most_common(count):
        lines.append(f"{100 * hits / samples:5.1f}  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="summarize py-spy raw profiles")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--count", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(top(path, args.count), end="\n\n")


if __name__ == "__main__":
    main()
