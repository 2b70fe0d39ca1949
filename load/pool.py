"""The parent's side of the generator: worker processes, commands, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from typing import Any

from load.workers import WorkerPlan, worker_main


class WorkerPool:
    """``len(plans)`` worker processes (spawned: a clean interpreter, its own uvloop)."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes = []
        self.procs = []
        for plan in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(plan, child), daemon=True, name=f"load-w{plan.index}"
            )
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def pids(self) -> dict[str, int]:
        return {f"generator{i}": p.pid for i, p in enumerate(self.procs) if p.pid is not None}

    async def call(self, command: str, *args: Any, timeout: float = 600) -> list[Any]:
        """Send ``command`` to every worker; their answers in worker order."""
        return await asyncio.to_thread(self._call, command, args, timeout)

    def _call(self, command: str, args: tuple[Any, ...], timeout: float) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, args))
        answers = []
        for index, pipe in enumerate(self.pipes):
            if not pipe.poll(timeout):
                raise TimeoutError(f"worker {index} did not answer {command!r} in {timeout} s")
            answers.append(pipe.recv())
        return answers

    async def close(self) -> None:
        """Ask every worker to stop (they close their sockets), then make sure they did."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("stop", ()))
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 40)
            if proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, 5)
            if proc.is_alive():
                proc.kill()
        for pipe in self.pipes:
            pipe.close()
