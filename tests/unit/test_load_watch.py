"""The load tool's per-second watch reads the servers' own GC and loop-lag histograms.

The pages are rendered by prometheus-client itself (a private registry with the same
metric names and buckets as svckit.metrics), so the parser meets the real text format.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from load.procstat import TICKS
from load.watch import describe, machine_delta, machine_ticks, parse, worst_ms, worst_seconds
from svckit import metrics


def _page() -> tuple[Histogram, Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    gc = Histogram(
        "minitg_gc_pause_seconds", "", ["generation"],
        buckets=metrics.GC_PAUSE._upper_bounds[:-1], registry=registry,
    )  # fmt: skip
    lag = Histogram(
        "minitg_event_loop_lag_seconds", "",
        buckets=metrics.EVENT_LOOP_LAG._upper_bounds[:-1], registry=registry,
    )  # fmt: skip
    return gc, lag, registry


def test_parse_and_worst_give_the_pause_time_and_the_worst_bucket_between_readings() -> None:
    gc, lag, registry = _page()
    gc.labels("0").observe(0.003)
    lag.observe(0.002)
    before = parse(generate_latest(registry).decode())
    gc.labels("0").observe(0.004)
    gc.labels("2").observe(0.07)  # a full collection of 70 ms
    lag.observe(0.03)
    lag.observe(0.004)
    after = parse(generate_latest(registry).decode())
    assert 74.0 == round((after["gc_s"] - before["gc_s"]) * 1000, 1)
    assert 100.0 == worst_ms(before["gc"], after["gc"])  # 70 ms lies in (50, 100]
    assert (0.0, 1.0) == (before["full"], after["full"])
    assert 50.0 == worst_ms(before["lag"], after["lag"])  # 30 ms lies in (25, 50]
    assert 0.0 == worst_ms(after["lag"], after["lag"])
    lag.observe(9.0)  # beyond the top bucket
    assert 10_000.0 == worst_ms(after["lag"], parse(generate_latest(registry).decode())["lag"])


def test_worst_seconds_pick_the_slowest_seconds_with_what_each_process_did() -> None:
    timeline = [[0, 800, 50.0], [1, 800, 160.0], [2, 790, 60.0], [3, 810, 55.0]]
    record = {
        1001: {"gateway0": {"cpu": 90.0, "gc_ms": 40.0, "lag_ms": 50.0}},
        1003: {"gateway0": {"cpu": 40.0}},
    }
    seconds = worst_seconds(timeline, 1000, record, top=2)
    assert [1, 2] == [s["second"] for s in seconds[:2]]
    assert record[1001] == seconds[0]["processes"]
    assert seconds[-1].get("median")
    text = describe(seconds)
    assert "s1 160 ms: gateway0 90% gc 40 lag<= 50" in text


def test_machine_delta_splits_busy_iowait_and_stolen_time() -> None:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal."""
    assert 8 == len(machine_ticks())
    before = [0] * 8
    after = [TICKS // 2, 0, TICKS // 4, TICKS, TICKS // 10, 0, TICKS // 4, TICKS // 5]
    assert {"cpu": 100.0, "iowait": 10.0, "steal": 20.0} == machine_delta(before, after, 1.0)
    seconds = [{"second": 0, "worst_ms": 90.0, "processes": {
        "machine": {"cpu": 190.0, "steal": 20.0}, "chat0": {"cpu": 30.0}}}]  # fmt: skip
    assert "s0 90 ms: machine 190% steal 20, chat0 30%" == describe(seconds)
