"""The run's comparison table and chart, from the targets' summaries (loadtest/http_run.py).

The table has one row per (users, target) and rezerv's ratio to each baseline in the baseline's
row: rezerv's successful holds/s and confirmed bookings/s divided by the baseline's, at the same
number of users, in the same run. When the run had several rounds (`compare --rounds`), a row's
throughput is the mean over the rounds, its latencies and what was HELD are listed round by
round, and the ratios are the means' ratio followed by each round's own. The chart plots every
target's throughput and its hold route's p50/p99 (the rounds' mean) against the number of users.
Under the table, a second one gives each system's own CPU per confirmed booking and the load
generator's, with rezerv's own CPU over each baseline's: what bounds the throughput ratio when
the cores are the limit.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import fmean
from typing import Any

from loadtest.core_speed import typical_ms

REZERV = "rezerv"
ROUNDS_NOTE = (
    "Several rounds: holds/s, confirmed/s and CPU are the rounds' mean; latencies, HELD at end,"
    " drain and the cores' fixed work are listed round by round; a ratio is the means' ratio, each"
    " round's own in brackets."
)
UNEVEN_CORES = 1.25  # the fixed work's two levels on the machine of BENCHMARKS.md: ~2.0 and ~3.3 ms (~1.6, ~2.6 before)
UNEVEN_MARK = "*"
CORES_NOTE = (
    "Fixed work: the mean CPU time of one fixed piece of pure-Python work, timed once a second in"
    " the window (loadtest/core_speed.py): the cores' own speed, which no system controls; the mean,"
    " since the cores switch between two speeds within a step and the median hides the share of"
    " each. Higher is"
    " slower; two steps that differ in it ran on a faster and a slower machine. A round's ratio marked"
    f" {UNEVEN_MARK} compares two steps whose fixed work differed by more than"
    f" {round((UNEVEN_CORES - 1) * 100)}%."
)


def _ratio(mine: float, theirs: float) -> str:
    if not theirs:
        return "n/a" if not mine else "inf"
    return f"{mine / theirs:.2f}x"


def _cpu(step: dict[str, Any]) -> str:
    cpu = step["cpu_percent"]
    shown = [f"{role} {value:.0f}" for role, value in cpu.items() if value >= 3 and role != "machine total"]
    return ", ".join(shown)


def round_count(results: list[dict[str, Any]]) -> int:
    """How many rounds the results come from (a result without a round is of the only one)."""
    return len({r.get("round", 1) for r in results})


def pooled(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per target, in the order targets first ran: each step's figures over the rounds
    the target ran in (a single round's result comes back as it was). Throughput, errors and CPU
    are the rounds' mean or sum; `rounds` keeps each round's step for what cannot be averaged."""
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_target[result["target"]].append(result)
    return [_pool(name, runs) for name, runs in by_target.items()]


def _pool(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    users = sorted({s["users"] for r in runs for s in r["steps"]})
    steps = []
    for n in users:
        each = [s | {"round": r.get("round", 1)} for r in runs for s in r["steps"] if s["users"] == n]
        errors: dict[str, int] = defaultdict(int)
        for step in each:
            for status, count in step["errors_by_status"].items():
                errors[status] += count
        roles = dict.fromkeys(role for step in each for role in step["cpu_percent"])
        steps.append(
            {
                "users": n,
                "holds_per_s": fmean(s["holds_per_s"] for s in each),
                "confirmed_per_s": fmean(s["confirmed_per_s"] for s in each),
                "hold_p50_ms": fmean(s["hold_p50_ms"] or 0 for s in each),
                "hold_p99_ms": fmean(s["hold_p99_ms"] or 0 for s in each),
                "errors_by_status": dict(errors),
                "held_at_end": max(s["held_at_end"] for s in each),
                "drain_s": max(s["drain_s"] for s in each),
                "cpu_percent": {role: fmean(s["cpu_percent"].get(role, 0.0) for s in each) for role in roles},
                "generator_saturated": any(s["generator_saturated"] for s in each),
                "rounds": each,
            }
        )
    audits = [r["audit"] for r in runs]
    oversold = sum(a["figures"].get("oversold tickets", 0) for a in audits)
    audit = {"ok": all(a["ok"] for a in audits), "figures": {"oversold tickets": oversold}}
    return {"target": name, "steps": steps, "audit": audit}


def _each_round(step: dict[str, Any], field: str, digits: int = 0) -> str:
    return " / ".join(f"{s[field] or 0:,.{digits}f}" for s in step["rounds"])


def _fixed_work(step: dict[str, Any]) -> str:
    """The cores' fixed work in each round (ms of CPU), "?" for a round without the probe."""
    return " / ".join(f"{typical_ms(s['core_speed']):.1f}" if s.get("core_speed") else "?" for s in step["rounds"])


def _paired_rounds(ours: dict[str, Any], theirs: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """rezerv's and the baseline's step of each round in which both ran it, in the baseline's order."""
    mine = {s["round"]: s for s in ours["rounds"]}
    return [(mine[s["round"]], s) for s in theirs["rounds"] if s["round"] in mine]


def _round_ratios(ours: dict[str, Any], theirs: dict[str, Any], field: str) -> str:
    """rezerv's figure over the baseline's, round by round (rounds in which both ran the step),
    each marked when the two steps ran on cores of different speed."""
    return ", ".join(_marked(_ratio(a[field], b[field]), a, b) for a, b in _paired_rounds(ours, theirs))


def _marked(ratio: str, one: dict[str, Any], other: dict[str, Any]) -> str:
    """A round's ratio, with UNEVEN_MARK when its two steps ran on cores of different speed."""
    return ratio + (UNEVEN_MARK if cores_differ(one, other) else "")


def cores_differ(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether the cores' fixed work took more than UNEVEN_CORES times as long in one step as in the
    other (False when either step has no probe)."""
    a, b = (step.get("core_speed") for step in (one, other))
    if not a or not b:
        return False
    slow, fast = max(typical_ms(a), typical_ms(b)), min(typical_ms(a), typical_ms(b))
    return bool(slow > UNEVEN_CORES * fast)


# roles in a step's CPU that are not the system under test: what drives it, and the rest of the machine
NOT_THE_SYSTEM = frozenset({"load generator", "loadtest driver", "outside this run", "machine total"})
COST_NOTE = (
    "Own CPU: the CPU per confirmed booking of the system's own processes (every role but the load"
    " generator, the driver and what ran outside the run), the rounds' mean. On the same cores, kept"
    " as busy, confirming twice as many bookings a second takes half the CPU per booking, the load"
    " generator's included: this is the part a system can change. CPU per booking follows the cores'"
    f" speed even more directly than throughput: a round's ratio marked {UNEVEN_MARK} compares steps on"
    " cores of different speed, as above."
)


def own_cpu_us(step: dict[str, Any]) -> float | None:
    """The system's own CPU per booking in one step (us), None when the step settled no booking."""
    cost = step.get("cpu_us_per_booking") or {}
    values = [value for role, value in cost.items() if role not in NOT_THE_SYSTEM]
    if not values or any(value is None for value in values):
        return None
    return float(sum(values))


def _mean_of_rounds(step: dict[str, Any], figure: Any) -> float | None:
    values = [figure(s) for s in step["rounds"]]
    known = [v for v in values if v is not None]
    return fmean(known) if known else None


def _generator_us(step: dict[str, Any]) -> float | None:
    return (step.get("cpu_us_per_booking") or {}).get("load generator")


def _cost_ratio(mine: float | None, theirs: float | None) -> str:
    return "n/a" if mine is None or not theirs else f"{mine / theirs:.2f}x"


def _us(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def comparison_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step of every target (over the rounds), with rezerv's ratios on the baselines' rows:
    of throughput (the means' and, with several rounds, each round's) and of own CPU per booking
    (the means' and, when the baseline ran the step in several rounds, each round's)."""
    targets = pooled(results)
    several = round_count(results) > 1
    mine = {s["users"]: s for r in targets if r["target"] == REZERV for s in r["steps"]}
    rows = []
    users = sorted({s["users"] for r in targets for s in r["steps"]})
    for n in users:
        for result in targets:
            step = next((s for s in result["steps"] if s["users"] == n), None)
            if step is None:
                continue
            errors = sum(count for status, count in step["errors_by_status"].items() if status != "409")
            row = {
                "users": n,
                "target": result["target"],
                "holds_per_s": step["holds_per_s"],
                "confirmed_per_s": step["confirmed_per_s"],
                "p50_ms": _each_round(step, "hold_p50_ms"),
                "p99_ms": _each_round(step, "hold_p99_ms"),
                "errors": errors,
                "refused_409": step["errors_by_status"].get("409", 0),
                "oversold": result["audit"]["figures"].get("oversold tickets", 0),
                "audit": "OK" if result["audit"]["ok"] else "FAILED",
                "held_at_end": _each_round(step, "held_at_end"),
                "drain_s": _each_round(step, "drain_s", 2),
                "cpu": _cpu(step),
                "fixed_work_ms": _fixed_work(step),
                "generator_saturated": step["generator_saturated"],
                "own_us": _mean_of_rounds(step, own_cpu_us),
                "generator_us": _mean_of_rounds(step, _generator_us),
            }
            ours = mine.get(n)
            if result["target"] != REZERV and ours is not None:
                row["rezerv_holds_ratio"] = _ratio(ours["holds_per_s"], step["holds_per_s"])
                row["rezerv_confirmed_ratio"] = _ratio(ours["confirmed_per_s"], step["confirmed_per_s"])
                row["rezerv_own_ratio"] = _cost_ratio(_mean_of_rounds(ours, own_cpu_us), row["own_us"])
                if several:
                    holds, confirmed = (_round_ratios(ours, step, f) for f in ("holds_per_s", "confirmed_per_s"))
                    row["rezerv_holds_ratio"] += f" ({holds})"
                    row["rezerv_confirmed_ratio"] += f" ({confirmed})"
                if len(step["rounds"]) > 1:
                    own = ", ".join(
                        _marked(_cost_ratio(own_cpu_us(a), own_cpu_us(b)), a, b) for a, b in _paired_rounds(ours, step)
                    )
                    row["rezerv_own_ratio"] += f" ({own})"
            rows.append(row)
    return rows


def cost_markdown(results: list[dict[str, Any]]) -> str:
    """The CPU each system took per confirmed booking, step by step, and rezerv's over each baseline's."""
    lines = [
        "| users | system | own CPU per booking, us | load generator per booking, us | rezerv's own / this |",
        "|" + "---|" * 5,
    ]
    for r in comparison_rows(results):
        lines.append(
            f"| {r['users']:,} | {r['target']} | {_us(r['own_us'])} | {_us(r['generator_us'])} "
            f"| {r.get('rezerv_own_ratio', '-')} |"
        )
    return "\n".join([*lines, "", COST_NOTE])


def comparison_markdown(results: list[dict[str, Any]]) -> str:
    """The comparison table, then what each system's processes took per booking; with several
    rounds, the note under it says how to read it."""
    head = (
        "| users | system | holds/s | confirmed/s | p50 ms | p99 ms | errors | oversold | audit "
        "| rezerv / this: holds | rezerv / this: confirmed | HELD at end (drain s) | CPU % of a core "
        "| fixed work, ms |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in comparison_rows(results):
        sat = " (generator saturated)" if r["generator_saturated"] else ""
        lines.append(
            f"| {r['users']:,} | {r['target']} | {r['holds_per_s']:,.0f} | {r['confirmed_per_s']:,.0f} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['oversold']} | {r['audit']} "
            f"| {r.get('rezerv_holds_ratio', '-')} | {r.get('rezerv_confirmed_ratio', '-')} "
            f"| {r['held_at_end']} ({r['drain_s']}) | {r['cpu']}{sat} | {r['fixed_work_ms']} |"
        )
    lines += ["", CORES_NOTE]
    if round_count(results) > 1:
        lines += ["", ROUNDS_NOTE]
    if any(s.get("cpu_us_per_booking") for r in results for s in r["steps"]):
        lines += ["", cost_markdown(results)]
    return "\n".join(lines)


def draw_chart(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """Throughput (successful holds/s, confirmed/s) and hold p50/p99 against users, per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for index, result in enumerate(pooled(results)):
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
