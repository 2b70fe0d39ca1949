"""``python -m load <scenario> [options]`` and ``python -m load bench``.

Starts the system itself, seeds it through the API, runs the scenario from worker
processes, prints a table (and writes JSON/markdown with ``--out``), stops and cleans up
everything it started. ``--control`` also runs the same scenario against raw aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from load import report
from load.bench import run_bench
from load.procstat import raise_nofile
from load.runner import run_scenario
from load.scenarios import PRESETS, Scenario, check
from load.seed import control_users, register_users, timed
from load.system import env_pairs, start_system
from load.watch import gc_text, stall_text

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*PRESETS, "bench"])
    for name, kind in (
        ("connections", int), ("duration", float), ("rate", float), ("group-size", int),
        ("window", int), ("per-sender", int), ("offline", int), ("missed", int),
        ("connect-concurrency", int), ("drain", float), ("ack-interval", float),
        ("ack-timeout", float), ("slo-p99-ms", float),
    ):  # fmt: skip
        parser.add_argument(f"--{name}", type=kind, help="override the preset's value")
    parser.add_argument(
        "--rates", type=_rates, help="a rate ladder, e.g. 100,200,400 (each for --duration s)"
    )
    parser.add_argument(
        "--shape", choices=["distributed", "embedded", "control"], default="distributed"
    )
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes")
    parser.add_argument("--chat-procs", type=int, default=1, help="chat service processes")
    parser.add_argument("--control", action="store_true", help="also run against raw aiohttp")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="an extra MINITG_* setting for every server process (repeatable)",
    )  # fmt: skip
    parser.add_argument("--log-level", default="INFO", help="MINITG_LOG_LEVEL of the servers")
    parser.add_argument("--out", type=Path, help="write <stamp>.md/.json and latest.* here")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--profile", type=Path, help="py-spy the servers; stacks into DIR")
    parser.add_argument("--quick", action="store_true", help="bench: smaller sizes (minutes)")
    parser.add_argument("--max-seconds", type=float, default=1800, help="hard stop of the tool")
    return parser.parse_args(argv)


def _rates(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def scenario_of(args: argparse.Namespace) -> Scenario:
    overrides = {k: v for k, v in vars(args).items() if k not in ("scenario", "shape")}
    scenario = PRESETS[args.scenario].with_overrides(overrides)
    check(scenario)
    return scenario


async def run_one(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The scenario on our system (and on the control first, with --control)."""
    scenario = scenario_of(args)
    results = []
    if args.control or args.shape == "control":
        control = await start_system("control")
        try:
            users = control_users(scenario.connections)
            results.append(await run_scenario(scenario, control, users, args.workers))
        finally:
            await control.stop()
    if args.shape == "control":
        return results
    system = await start_system(
        args.shape, gateways=args.gateways, chat_procs=args.chat_procs,
        log_level=args.log_level, extra_env=env_pairs(args.server_env),
    )  # fmt: skip
    try:
        devices, seconds = await timed(register_users(system.gateways, scenario.connections))
        print(f"seeded {len(devices)} users through the API in {seconds:.1f} s", file=sys.stderr)
        ours = await run_scenario(scenario, system, devices, args.workers, args.profile)
        ours["seed_s"] = round(seconds, 1)
    finally:
        await system.stop()
    if results:
        ours["ratio_to_control"] = report.compare(ours, results[0])
    return [*results, ours]


async def main_async(args: argparse.Namespace) -> int:
    raise_nofile()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # cleanup runs in the finally blocks
    work = run_bench(args, RESULTS) if args.scenario == "bench" else run_one(args)
    results = await asyncio.wait_for(work, args.max_seconds)
    print(report.table(results))
    for r in results:
        print(f"\n{r['scenario']} ({r['shape']}) processes:\n{report.process_table(r)}")
        stalls = stall_text(r)
        if stalls:
            print(f"\nworst seconds (CPU %, GC ms, loop lag ms):\n{stalls}")
        if r.get("gc"):
            print(f"\nGC pauses over the run:\n{gc_text(r['gc'])}")
    if args.out and args.scenario != "bench":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        report.write(results, args.out, stamp, f"# minitg load: {args.scenario}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    import uvloop

    with contextlib.suppress(asyncio.CancelledError):
        return int(uvloop.run(main_async(args)))
    return 130


if __name__ == "__main__":
    sys.exit(main())
