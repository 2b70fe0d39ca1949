"""Turn what the workers recorded into the numbers, a table and JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from load.client import Recorder
from load.watch import stall_text
from load.workers import SendReport

if TYPE_CHECKING:
    from load.runner import Run


def percentiles(values: Any) -> dict[str, float]:
    """count, p50, p95, p99, max (nearest rank) of ``values``, in their unit."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}

    def rank(q: float) -> float:
        return round(float(ordered[min(len(ordered) - 1, int(q * len(ordered)))]), 1)

    return {
        "count": len(ordered), "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
        "max": round(float(ordered[-1]), 1),
    }  # fmt: skip


def summarize(
    run: Run, receipts: list[Recorder], usage: dict[str, dict[str, float]], chats: int
) -> dict[str, Any]:
    """The JSON document of one scenario run."""
    scenario = run.scenario
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "kind": scenario.kind,
        "shape": run.system.shape,
        "params": scenario.params(),
        "chats": chats,
        "phases_s": run.phases,
        "connections": _connections(run),
        "processes": usage,
    }
    if run.reconnects:
        result["catchup"] = {
            "clients": sum(r.ok + r.failed for r in run.reconnects),
            "caught_up": sum(r.ok for r in run.reconnects),
            "failed": sum(r.failed for r in run.reconnects),
            "per_client_ms": percentiles(t for r in run.reconnects for t in r.times_ms),
            "all_caught_up_s": run.phases.get("catchup_s", 0.0),
        }
    if run.steps:
        result["steps"] = run.steps
        result["messages"] = best_step(run.steps)
        result["max_rate_within_slo"] = (
            result["messages"]["acked_per_s"] if any(s["within_slo"] for s in run.steps) else 0.0
        )
    elif run.sends:
        result["messages"] = messages(run.sends, receipts, run.phases.get("send_s", 0.0))
    result.update(run.extra)
    return result


def _connections(run: Run) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for c in run.connects:
        errors.update(c.errors)
    return {
        "attempted": run.scenario.connections,
        "established": sum(c.ok for c in run.connects),
        "failed": sum(c.failed for c in run.connects),
        "errors": dict(errors),
        "connect_ms": percentiles(t for c in run.connects for t in c.times_ms),
        "all_connected_s": run.phases.get("connect_s", 0.0),
    }


def messages(sends: list[SendReport], receipts: list[Recorder], seconds: float) -> dict[str, Any]:
    """Sent/acked/delivered/lost/duplicated and latencies of one send phase of ``seconds``."""
    seen = _merge([rec.per_message for rec in receipts])
    acked = {k: v for s in sends for k, v in s.acked_ids.items()}
    lost = sum(max(0, rcpts - int(seen.get(mid, (0, 0))[0])) for mid, (_, rcpts) in acked.items())
    complete = [
        (seen[mid][1] - sent) * 1000.0
        for mid, (sent, rcpts) in acked.items()
        if mid in seen and seen[mid][0] >= rcpts
    ]
    timeline = _merge([rec.timeline for rec in receipts])
    errors: Counter[str] = Counter()
    for s in sends:
        errors.update(s.errors)
    sent_times = [sent for sent, _ in acked.values()]
    last_receive = max((last for _, last in seen.values()), default=0.0)
    delivered = sum(r.delivered for r in receipts)
    delivery_span = (last_receive - min(sent_times)) if sent_times and last_receive else 0.0
    return {
        "attempted": sum(s.attempted for s in sends),
        "acknowledged": len(acked),
        "failed": sum(s.failed for s in sends),
        "skipped_overload": sum(s.skipped for s in sends),
        "errors": dict(errors),
        "expected_deliveries": sum(r for _, r in acked.values()),
        "delivered": delivered,
        "lost": lost,
        "duplicated": sum(r.duplicated for r in receipts),
        "redelivered_filtered_by_pts": sum(r.redelivered for r in receipts),
        "ack_ms": percentiles(x for s in sends for x in s.ack_ms),
        "delivery_ms": percentiles(x for r in receipts for x in r.latencies_ms),
        "fanout_complete_ms": percentiles(complete),
        "acked_per_s": round(len(acked) / seconds, 1) if seconds else 0.0,
        "first_send_s": int(min(sent_times)) if sent_times else 0,
        "deliveries_per_s": round(delivered / delivery_span, 1) if delivery_span else 0.0,
        # per second of the run: [seconds since the first send, deliveries, worst ms]
        "timeline": [
            [second - int(min(sent_times)), int(count), round(worst, 1)]
            for second, (count, worst) in sorted(timeline.items())
        ]
        if sent_times
        else [],
    }


def _merge(parts: list[dict[int, list[float]]]) -> dict[int, list[float]]:
    """Per key [count, latest-or-worst] over the workers: counts add up, maxima combine."""
    merged: dict[int, list[float]] = {}
    for part in parts:
        for key, (count, top) in part.items():
            entry = merged.setdefault(key, [0.0, 0.0])
            entry[0] += count
            entry[1] = max(entry[1], top)
    return merged


def within_slo(step: dict[str, Any], slo_ms: float) -> bool:
    """No loss, no duplicate, no failed send, nothing skipped, p99 delivery within the SLO."""
    return bool(
        step["lost"] == 0 and step["duplicated"] == 0 and step["failed"] == 0
        and step["skipped_overload"] == 0 and step["delivery_ms"]["p99"] <= slo_ms
    )  # fmt: skip


def best_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest step within the SLO, or the first step when none is."""
    passing = [s for s in steps if s["within_slo"]]
    return max(passing, key=lambda s: s["acked_per_s"]) if passing else steps[0]


def _top(errors: dict[str, int]) -> str:
    ranked = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v}" for k, v in ranked) or "-"


def _pct(d: dict[str, Any] | None) -> str:
    if not d or not d.get("count"):
        return "-"
    return f"{d['p50']:g} / {d['p95']:g} / {d['p99']:g} / {d['max']:g}"


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) pairs for one scenario, as shown in the tables."""
    p, c = result["params"], result["connections"]
    out = [
        ("shape", result["shape"]),
        ("connections ok / failed", f"{c['established']} / {c['failed']}"),
        ("connect ms p50 / p99", f"{c['connect_ms']['p50']:g} / {c['connect_ms']['p99']:g}"),
        ("all connected in s", f"{c['all_connected_s']:g}"),
        ("connect errors", _top(c["errors"])),
        ("held at end / dropped", f"{result['alive_at_end']} / {result['dropped_by_server']}"),
    ]
    if "gateway_rss_per_connection_kb" in result:
        kb = ", ".join(f"{v:g}" for v in result["gateway_rss_per_connection_kb"].values())
        out.append(("gateway RSS KB / connection", kb))
    if result.get("messages"):
        out += _message_rows(result["messages"], p)
    return out + _tail_rows(result)


def _message_rows(m: dict[str, Any], p: dict[str, Any]) -> list[tuple[str, str]]:
    offered = f"{p['rate']:g} msg/s" if p["rate"] else f"closed loop, window {p['window']}"
    if p["rates"]:
        offered = "ladder " + ",".join(f"{r:g}" for r in p["rates"]) + " msg/s"
    return [
        ("offered", offered),
        ("sent / acked / failed / skipped", f"{m['attempted']} / {m['acknowledged']} / "
         f"{m['failed']} / {m['skipped_overload']}"),
        ("send errors", _top(m["errors"])),
        ("expected / delivered", f"{m['expected_deliveries']} / {m['delivered']}"),
        ("LOST / DUPLICATED", f"{m['lost']} / {m['duplicated']}"),
        ("acked msg/s", f"{m['acked_per_s']:g}"),
        ("deliveries/s", f"{m['deliveries_per_s']:g}"),
        ("ack ms p50/p95/p99/max", _pct(m["ack_ms"])),
        ("delivery ms p50/p95/p99/max", _pct(m["delivery_ms"])),
        ("all recipients ms p50/p95/p99/max", _pct(m["fanout_complete_ms"])),
    ]  # fmt: skip


def _tail_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for step in result.get("steps", []):
        verdict = "ok" if step["within_slo"] else "MISS"
        out.append(
            (
                f"step {step['offered_rate']:g} msg/s: acked/s, p99, lost ({verdict})",
                f"{step['acked_per_s']:g}, {step['delivery_ms']['p99']:g}, {step['lost']}",
            )
        )
    batches = result.get("coalesced", {})
    if batches:
        shown = [k for k in ("sends", "acks") if k in batches]
        out.append(
            (
                "items per coalesced call (calls)",
                ", ".join(
                    f"{k} {batches[k]['per_call']:g} ({batches[k]['calls']:g})" for k in shown
                ),
            )
        )
    calls = result.get("grpc_calls", {})
    if calls:
        top = ", ".join(f"{m} {n:g}" for m, n in list(calls.items())[:8])
        out.append(("gRPC calls served, by method", top))
    if "max_rate_within_slo" in result:
        out.append(("max msg/s within SLO", f"{result['max_rate_within_slo']:g}"))
    if "catchup" in result:
        cu = result["catchup"]
        out += [
            ("caught up / failed", f"{cu['caught_up']} / {cu['failed']}"),
            ("all caught up in s", f"{cu['all_caught_up_s']:g}"),
            ("per client ms p50/p95/p99/max", _pct(cu["per_client_ms"])),
        ]
    if "ratio_to_control" in result:
        r = result["ratio_to_control"]
        out.append(("ratio to control: msg/s, p99", f"{r['throughput']:g}, {r['p99']:g}"))
    return out


def table(results: list[dict[str, Any]]) -> str:
    """One markdown table: a column per scenario run."""
    heads = [f"{r['scenario']} ({r['shape']})" for r in results]
    columns = [dict(rows(r)) for r in results]
    figures = list(dict.fromkeys(k for r in results for k, _ in rows(r)))
    lines = ["| figure | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    lines += [f"| {f} | " + " | ".join(col.get(f, "") for col in columns) + " |" for f in figures]
    return "\n".join(lines)


def process_table(result: dict[str, Any]) -> str:
    """CPU% (of one core) and peak RSS of every process group, for one scenario run."""
    lines = ["| process | CPU % | peak RSS MB |", "|---|---|---|"]
    for label, u in result["processes"].items():
        lines.append(f"| {label} | {u['cpu_percent']:g} | {u['peak_rss_mb']:g} |")
    return "\n".join(lines)


def compare(ours: dict[str, Any], control: dict[str, Any]) -> dict[str, float]:
    """Our throughput and p99 delivery as ratios of the control's in the same run."""
    a, b = ours.get("messages", {}), control.get("messages", {})
    key = "max_rate_within_slo"
    if key in ours and key in control:  # ladders: the best rate each meets the SLO at
        through = ours[key] / control[key] if control[key] else 0.0
    else:
        through = a.get("acked_per_s", 0) / b["acked_per_s"] if b.get("acked_per_s") else 0.0
    p99a, p99b = a.get("delivery_ms", {}).get("p99", 0), b.get("delivery_ms", {}).get("p99", 0)
    return {"throughput": round(through, 3), "p99": round(p99a / p99b, 2) if p99b else 0.0}


def write(results: list[dict[str, Any]], directory: Path, stamp: str, preamble: str) -> Path:
    """``<stamp>.md`` and ``.json`` plus ``latest.md``/``latest.json``; returns the .md path."""
    directory.mkdir(parents=True, exist_ok=True)
    body = [preamble, "", table(results), ""]
    for r in results:
        body += [f"### {r['scenario']} ({r['shape']}): processes", "", process_table(r), ""]
        stalls = stall_text(r)
        if stalls:
            body += [
                f"### {r['scenario']} ({r['shape']}): worst seconds (CPU %, GC ms, loop lag)",
                "", "```", stalls, "```", "",
            ]  # fmt: skip
    text = "\n".join(body)
    # the whole per-second watch stays in --json output; kept reports carry each step's
    # worst seconds only
    kept = [{k: v for k, v in r.items() if k != "watch"} for r in results]
    data = json.dumps({"stamp": stamp, "results": kept}, indent=2, default=str)
    for name in (stamp, "latest"):
        (directory / f"{name}.md").write_text(text)
        (directory / f"{name}.json").write_text(data)
    return directory / f"{stamp}.md"
