"""Cleanup that a task cancellation must not cut short.

``asyncio.shield`` keeps the shielded work running when the awaiting task is cancelled,
but the task itself moves on at once: code after the await (releasing a lock, returning
a connection) would then run while the cleanup is still in flight. The helper here keeps
the task waiting until the cleanup is over and only then re-raises the cancellation, so
the cancel is delivered late but never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish_despite_cancellation(cleanup: Awaitable[T]) -> T:
    """Await ``cleanup`` to its end even if this task is cancelled (any number of times)
    meanwhile; then re-raise ``CancelledError`` if it was. Use only for short work
    that cannot hang (a local ROLLBACK): the task cannot be cancelled while it runs."""
    inner = asyncio.ensure_future(cleanup)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(inner)
        except asyncio.CancelledError:
            if inner.cancelled():
                raise  # the cleanup itself was cancelled (the loop is shutting down)
            cancelled = True
        else:
            break
    if cancelled:
        raise asyncio.CancelledError
    return result
