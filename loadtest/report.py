"""The run's comparison table and chart, from the targets' summaries (loadtest/http_run.py).

The table has one row per (users, target) and rezerv's ratio to each baseline in the baseline's
row: rezerv's successful holds/s and confirmed bookings/s divided by the baseline's, at the same
number of users, in the same run. The chart plots every target's throughput and its hold
route's p50/p99 against the number of users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REZERV = "rezerv"


def _ratio(mine: float, theirs: float) -> str:
    if not theirs:
        return "n/a" if not mine else "inf"
    return f"{mine / theirs:.2f}x"


def _cpu(step: dict[str, Any]) -> str:
    cpu = step["cpu_percent"]
    shown = [f"{role} {value:.0f}" for role, value in cpu.items() if value >= 3 and role != "machine total"]
    return ", ".join(shown)


def comparison_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step of every target, with rezerv's ratios on the baselines' rows."""
    mine = {s["users"]: s for r in results if r["target"] == REZERV for s in r["steps"]}
    rows = []
    users = sorted({s["users"] for r in results for s in r["steps"]})
    for n in users:
        for result in results:
            step = next((s for s in result["steps"] if s["users"] == n), None)
            if step is None:
                continue
            errors = sum(count for status, count in step["errors_by_status"].items() if status != "409")
            row = {
                "users": n,
                "target": result["target"],
                "holds_per_s": step["holds_per_s"],
                "confirmed_per_s": step["confirmed_per_s"],
                "p50_ms": step["hold_p50_ms"],
                "p99_ms": step["hold_p99_ms"],
                "errors": errors,
                "refused_409": step["errors_by_status"].get("409", 0),
                "oversold": result["audit"]["figures"].get("oversold tickets", 0),
                "audit": "OK" if result["audit"]["ok"] else "FAILED",
                "held_at_end": step["held_at_end"],
                "drain_s": step["drain_s"],
                "cpu": _cpu(step),
                "generator_saturated": step["generator_saturated"],
            }
            ours = mine.get(n)
            if result["target"] != REZERV and ours is not None:
                row["rezerv_holds_ratio"] = _ratio(ours["holds_per_s"], step["holds_per_s"])
                row["rezerv_confirmed_ratio"] = _ratio(ours["confirmed_per_s"], step["confirmed_per_s"])
            rows.append(row)
    return rows


def comparison_markdown(results: list[dict[str, Any]]) -> str:
    head = (
        "| users | system | holds/s | confirmed/s | p50 ms | p99 ms | errors | oversold | audit "
        "| rezerv / this: holds | rezerv / this: confirmed | HELD at end (drain s) | CPU % of a core |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in comparison_rows(results):
        sat = " (generator saturated)" if r["generator_saturated"] else ""
        lines.append(
            f"| {r['users']:,} | {r['target']} | {r['holds_per_s']:,.0f} | {r['confirmed_per_s']:,.0f} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['oversold']} | {r['audit']} "
            f"| {r.get('rezerv_holds_ratio', '-')} | {r.get('rezerv_confirmed_ratio', '-')} "
            f"| {r['held_at_end']} ({r['drain_s']}) | {r['cpu']}{sat} |"
        )
    return "\n".join(lines)


def draw_chart(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """Throughput (successful holds/s, confirmed/s) and hold p50/p99 against users, per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for index, result in enumerate(results):
        steps = sorted(result["steps"], key=lambda s: s["users"])
        if not steps:
            continue
        users = [s["users"] for s in steps]
        color = f"C{index}"
        name = result["target"]
        left.plot(users, [s["holds_per_s"] for s in steps], "o-", color=color, label=f"{name}: holds/s")
        left.plot(users, [s["confirmed_per_s"] for s in steps], "s--", color=color, label=f"{name}: confirmed/s")
        right.plot(users, [s["hold_p99_ms"] or 0 for s in steps], "o-", color=color, label=f"{name}: p99")
        right.plot(users, [s["hold_p50_ms"] or 0 for s in steps], "s:", color=color, label=f"{name}: p50")
    ticks = sorted({s["users"] for r in results for s in r["steps"]})
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [f"{t:,}" for t in ticks])
        axis.minorticks_off()
        axis.set_xlabel("users (Locust)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    left.set_ylabel("per second")
    left.set_title("throughput")
    right.set_yscale("log")
    right.minorticks_on()
    right.set_ylabel("hold latency, ms")
    right.set_title("POST .../holds latency")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
