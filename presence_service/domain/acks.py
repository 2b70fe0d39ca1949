"""Batching of AckUpdates: watermarks only move forward (pure, no I/O).

One batch collects the acks that arrive within the flush interval (about 50 ms): per
session the highest pts, per (chat, user) the highest seq. The batch is written in one
transaction; the stored watermark also only moves forward (the upsert keeps the greater
value), so acks may be repeated or reordered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Watermark:
    """A device's delivered pts."""

    user_id: int
    max_pts: int


@dataclass(slots=True)
class Receipt(Generic[T]):
    """A member's delivered seq in one chat, with the credential to look the chat up."""

    max_seq: int
    caller: T


@dataclass(slots=True)
class AckBatch(Generic[T]):
    """The acks of one flush interval, merged."""

    watermarks: dict[str, Watermark] = field(default_factory=dict)
    receipts: dict[tuple[int, int], Receipt[T]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.watermarks or self.receipts)

    def add(
        self,
        session_id: str,
        user_id: int,
        max_pts: int,
        chats: Sequence[tuple[int, int]],
        caller: T,
    ) -> None:
        """Merge one ack: every value keeps the maximum seen in this batch."""
        if max_pts > 0:
            known = self.watermarks.get(session_id)
            if known is None or known.max_pts < max_pts:
                self.watermarks[session_id] = Watermark(user_id, max_pts)
        for chat_id, max_seq in chats:
            if max_seq <= 0:
                continue
            receipt = self.receipts.get((chat_id, user_id))
            if receipt is None:
                self.receipts[(chat_id, user_id)] = Receipt(max_seq, caller)
            elif receipt.max_seq < max_seq:
                receipt.max_seq, receipt.caller = max_seq, caller


class ReceiptLog:
    """The last seq announced per (chat, member), so receipts never go backwards or
    repeat. Bounded (least recently used entries are forgotten): after forgetting, or
    after a restart, a repeated ack announces its seq once more, which clients ignore."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._sent: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._capacity = capacity

    def advances(self, chat_id: int, user_id: int, max_seq: int) -> bool:
        """True when ``max_seq`` is above the last announced seq."""
        return self._sent.get((chat_id, user_id), 0) < max_seq

    def record(self, chat_id: int, user_id: int, max_seq: int) -> None:
        key = (chat_id, user_id)
        self._sent[key] = max(max_seq, self._sent.get(key, 0))
        self._sent.move_to_end(key)
        while len(self._sent) > self._capacity:
            self._sent.popitem(last=False)
