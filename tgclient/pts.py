"""The pts rule as a small state machine with no I/O (docs/PROTOCOL.md section 4).

``offer`` an update and get back the updates to apply now, in order, and whether a gap was
found (then the caller fetches GetDifference). Updates past a gap are held and released as
soon as the gap is filled, so nothing is applied twice or out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minitg.chat.v1 import updates_pb2


@dataclass
class PtsState:
    """A device's position in its update log, and the updates held back behind a gap."""

    pts: int = 0
    held: dict[int, updates_pb2.Update] = field(default_factory=dict)

    def offer(self, update: updates_pb2.Update) -> tuple[list[updates_pb2.Update], bool]:
        """Apply by the rule; return (updates to apply now, True when a gap was found)."""
        if update.pts == 0:
            return [update], False
        if update.pts <= self.pts:
            return [], False  # a duplicate: delivery is at least once
        if self.pts + update.pts_count == update.pts:
            self.pts = update.pts
            return [update, *self.release()], False
        self.held[update.pts] = update
        return [], True

    def advance(self, pts: int, count: int) -> tuple[list[updates_pb2.Update], bool]:
        """A reply that stands for our own update (send, read, edit, delete)."""
        if not pts or not count or pts <= self.pts:
            return [], False
        if self.pts + count == pts:
            self.pts = pts
            return self.release(), False
        return [], True

    def release(self) -> list[updates_pb2.Update]:
        """Held updates that now follow without a gap, in pts order."""
        ready: list[updates_pb2.Update] = []
        for pts in sorted(self.held):
            update = self.held[pts]
            if pts <= self.pts:
                del self.held[pts]
            elif self.pts + update.pts_count == pts:
                del self.held[pts]
                self.pts = pts
                ready.append(update)
            else:
                break
        return ready

    def reset(self, pts: int) -> None:
        """Start over at ``pts`` (the log was trimmed past us: TOO_LONG)."""
        self.pts = pts
        self.held.clear()
