"""bcrypt password hashing, always off the event loop and with bounded concurrency.

bcrypt releases the GIL, so a small thread pool uses the machine's cores; the semaphore
caps how many hashes wait at once so a login flood queues instead of growing without bound
(the gateway's rate limits keep that queue short).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from svckit import metrics


class PasswordHasher:
    """Hash and check passwords with bcrypt at a fixed cost."""

    def __init__(self, cost: int, workers: int | None = None) -> None:
        if not 4 <= cost <= 31:
            raise ValueError(f"bcrypt cost must be 4..31, got {cost}")
        self.cost = cost
        size = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="bcrypt")
        self._slots = asyncio.Semaphore(size * 16)
        # Checked against when the email is unknown, so a miss costs what a hit costs.
        self._decoy = bcrypt.hashpw(b"decoy password", bcrypt.gensalt(cost))

    async def hash(self, password: bytes) -> str:
        salt = bcrypt.gensalt(self.cost)
        async with self._slots:
            hashed = await asyncio.get_running_loop().run_in_executor(
                self._pool, bcrypt.hashpw, password, salt
            )
        return hashed.decode("ascii")

    async def check(self, password: bytes, stored: str | None) -> bool:
        """True when ``password`` matches ``stored``; with None, burn the same time, False."""
        target = stored.encode("ascii") if stored else self._decoy
        metrics.PASSWORD_CHECKS.inc()
        async with self._slots:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._pool, bcrypt.checkpw, password, target
            )
        return bool(ok) and stored is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
