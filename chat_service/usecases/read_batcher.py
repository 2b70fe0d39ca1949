"""The ReadHistory batcher: coalesces calls and writes them in one transaction.

Every ReadHistory call waits in a ``ReadBatcher`` for up to one flush window (about
50 ms); the batcher then coalesces the calls (the highest max_seq per user and chat) and
writes them all in ONE transaction (``adapters.reads.ReadStore``), and each call returns
after that commit with its result. Under load this turns hundreds of tiny write
transactions a second into a few.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chat_service.adapters.reads import ReadOutcome, ReadStore
from chat_service.domain import rules
from chat_service.domain.model import ReadRequest, ReadResult
from svckit.errors import DomainError


class ReadBatcher:
    """Coalesces ReadHistory calls for one flush window and writes them together."""

    def __init__(
        self,
        store: ReadStore,
        *,
        window: float,
        clock_ms: Callable[[], int],
        on_commit: Callable[[], None],
        max_batch: int = 500,
    ) -> None:
        self._store, self._window, self._clock_ms = store, window, clock_ms
        self._on_commit, self._max_batch = on_commit, max_batch
        self._waiting: dict[
            tuple[int, int], tuple[ReadRequest, list[asyncio.Future[ReadOutcome]]]
        ] = {}
        self._request_id = ""
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, req: ReadRequest, request_id: str) -> ReadResult:
        """Queue the read, wait for the batched commit, return this call's result."""
        rules.read_target(req.max_seq, 0, req.max_seq)  # validates max_seq before queueing
        future: asyncio.Future[ReadOutcome] = asyncio.get_running_loop().create_future()
        key = (req.user_id, req.chat_id)
        held = self._waiting.get(key)
        if held is None or req.max_seq > held[0].max_seq:
            self._waiting[key] = (req, [*(held[1] if held else []), future])
        else:
            held[1].append(future)
        self._request_id = self._request_id or request_id
        if len(self._waiting) >= self._max_batch:
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        outcome = await future
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._window)
        self._flusher = None
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            taken, self._waiting = self._waiting, {}
            request_id, self._request_id = self._request_id, ""
            if not taken:
                return
            held = list(taken.values())
            try:
                outcomes = await self._store.read(
                    [req for req, _ in held], self._clock_ms(), request_id
                )
            except Exception as exc:
                for _, futures in held:
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                return
            self._on_commit()
            for (_, futures), outcome in zip(held, outcomes, strict=True):
                for future in futures:
                    if not future.done():
                        future.set_result(outcome)

    async def close(self) -> None:
        """Write whatever is waiting (shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self._flush()
