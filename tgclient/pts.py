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
    own: dict[int, int] = field(default_factory=dict)  # our replies behind a gap: pts -> count

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
        """A reply that stands for our own update (send, read, edit, delete). Ahead of a
        gap it is remembered (the server pushes it to our other devices, not to us) and
        counted in once the updates before it arrive."""
        if not pts or not count or pts <= self.pts:
            return [], False
        if self.pts + count == pts:
            self.pts = pts
            return self.release(), False
        self.own[pts] = count
        return [], True

    @property
    def pending(self) -> bool:
        """Whether anything waits behind a gap."""
        return bool(self.held or self.own)

    def release(self) -> list[updates_pb2.Update]:
        """Held updates that now follow without a gap, in pts order (our own replies
        waiting behind the gap advance pts without producing an update)."""
        ready: list[updates_pb2.Update] = []
        for pts in sorted({*self.held, *self.own}):
            count = self.own[pts] if pts in self.own else self.held[pts].pts_count
            if pts > self.pts and self.pts + count != pts:
                break
            update, _ = self.held.pop(pts, None), self.own.pop(pts, None)
            if pts <= self.pts:
                continue
            self.pts = pts
            if update is not None:
                ready.append(update)
        return ready

    def reset(self, pts: int) -> None:
        """Start over at ``pts`` (the log was trimmed past us: TOO_LONG)."""
        self.pts = pts
        self.held.clear()
        self.own.clear()
