"""The load generator still runs: 100 connections for a few seconds, sane numbers, no timings.

A benchmark asserts nothing about speed in CI; this only keeps ``python -m load`` from
rotting: it starts an embedded system and the control itself, seeds through the API,
drives the ``smoke`` preset (direct chats, 50 msg/s, 3 s) and reports. The send-path
measurement (``load.sendpath``) runs a few batches the same way.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from load.system import POSTGRES_URL
from tests.e2e.processes import REPO

pytestmark = pytest.mark.e2e


def test_smoke_scenario_reports_every_message_delivered_once(tmp_path: Path) -> None:
    """The smoke run ends by itself and reports 100 connections, deliveries, 0 lost, 0 dup."""
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "load", "smoke", "--shape", "embedded", "--control",
         "--json", str(out), "--max-seconds", "90"],
        cwd=REPO, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert 0 == done.returncode, done.stdout + done.stderr
    control, ours = json.loads(out.read_text())
    for result in (control, ours):
        assert 100 == result["connections"]["established"]
        assert 0 == result["connections"]["failed"]
        messages = result["messages"]
        assert messages["acknowledged"] > 0
        assert messages["delivered"] > 0
        assert messages["delivered"] >= messages["expected_deliveries"]
        assert 0 == messages["lost"]
        assert 0 == messages["duplicated"]
        assert {"p50", "p95", "p99", "max"} <= set(messages["delivery_ms"])
        assert "cpu_percent" in next(iter(result["processes"].values()))
    assert ("control", "embedded") == (control["shape"], ours["shape"])
    # the worst seconds carry every process's CPU, and our server's own GC and loop lag
    worst = ours["messages"]["worst_seconds"]
    assert worst and worst[0]["worst_ms"] >= worst[-1]["worst_ms"]
    assert any({"cpu", "gc_ms", "lag_ms"} <= set(s["processes"].get("all", {})) for s in worst)
    assert "worst seconds (CPU %, GC ms, loop lag ms):" in done.stdout
    assert ours["ratio_to_control"]["throughput"] > 0
    assert ours["coalesced"]["acks"]["items"] > 0  # the devices' delivered-acks went out
    assert "| LOST / DUPLICATED |" in done.stdout


def test_sendpath_measures_the_send_transaction_and_drops_its_database() -> None:
    """``python -m load.sendpath`` runs a few batches on PostgreSQL and prints its figures;
    its scratch database is gone afterwards (compared with before: one left by a run that
    was killed, say under a profiler's timeout, is not this run's)."""
    before = asyncio.run(_scratch_databases())
    done = subprocess.run(
        [sys.executable, "-m", "load.sendpath", "--batch", "3", "--rounds", "5", "--relay"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "batch 3 (direct chats, + relay):" in done.stdout
    assert "us CPU per message" in done.stdout
    assert before == asyncio.run(_scratch_databases())


async def _scratch_databases() -> list[str]:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'minitg_sendpath_%'"
        )
    finally:
        await admin.close()
    return [r["datname"] for r in rows]
