"""load/grpcpath.py: every mode delivers each item its own result, and the figures are real.

A smoke run of the measurement tool at a tiny rate: it starts its gRPC server process on
127.0.0.1, drives each mode open loop and then closed loop, and stops the server.
"""

from __future__ import annotations

import math

from load.grpcpath import MODES, measure


def test_every_mode_answers_every_item_with_its_own_result_and_costs_cpu_on_both_sides() -> None:
    rows = measure(MODES, rate=400, seconds=0.3, batch=10, max_seconds=0.2, window=16)

    assert [(r["mode"], r["run"]) for r in rows] == [
        (mode, run) for mode in MODES for run in ("400/s", "max/16")
    ]
    for row in rows:
        assert row["items"] == row["expected"] > 0, row
        assert (row["bad"], row["failed"], row["lost"]) == (0, 0, 0), row
        assert row["client_us"] > 0, row
        if row["mode"] != "none":  # without gRPC the server is idle
            assert row["server_us"] > 0, row
        assert math.isfinite(row["p99_ms"]) and 0 < row["p50_ms"] <= row["p99_ms"], row
    by_run = {(r["mode"], r["run"]): r for r in rows}
    for mode in ("unary-1", "stream-1"):
        assert by_run[mode, "max/16"]["items_per_call"] == 1.0
    for mode in ("unary-batch", "stream-batch"):
        # 16 submitters always waiting behind one call in flight: the batches fill up
        assert by_run[mode, "max/16"]["items_per_call"] > 2
