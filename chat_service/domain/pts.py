"""Who gets which pts: each recipient's update-log positions, as pure arithmetic.

A write transaction logs its updates in order, each to a set of recipients, and every
recipient needs one pts per update they get. The counters are bumped once per
transaction, by each recipient's total (``pts_counts``); the new positions are then handed
out in update order, ending at each counter's new value (``assign_pts``), so every
recipient's pts stay gapless and follow the log order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def pts_counts(updates: Iterable[Iterable[int]]) -> dict[int, int]:
    """Recipient -> how many pts the updates (each given as its recipients) need."""
    counts: dict[int, int] = {}
    for recipients in updates:
        for user_id in recipients:
            counts[user_id] = counts.get(user_id, 0) + 1
    return counts


def assign_pts(updates: Sequence[Iterable[int]], last: Mapping[int, int]) -> list[dict[int, int]]:
    """Per update, recipient -> their pts: consecutive in update order, ending at
    ``last[user]`` (the counter after it was bumped by ``pts_counts(updates)``)."""
    next_pts = {u: last[u] - n + 1 for u, n in pts_counts(updates).items()}
    assigned: list[dict[int, int]] = []
    for recipients in updates:
        pts: dict[int, int] = {}
        for user_id in recipients:
            pts[user_id] = next_pts[user_id]
            next_pts[user_id] += 1
        assigned.append(pts)
    return assigned
