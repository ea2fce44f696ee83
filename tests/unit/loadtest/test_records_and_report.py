"""The client records round trip, and the comparison's ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.hold_keys import hold_id_for
from loadtest.audit_rules import NO_OUTCOME
from loadtest.records import RecordWriter, read_acknowledgements, read_client_holds, read_outcome_counts
from loadtest.report import (
    CORES_NOTE,
    COST_NOTE,
    ROUNDS_NOTE,
    comparison_markdown,
    comparison_rows,
    cores_differ,
)


def test_records_of_several_processes_are_read_back_as_one_client_hold_per_key(tmp_path: Path) -> None:
    first, second = RecordWriter(tmp_path / "a"), RecordWriter(tmp_path / "b")
    first.intent("ann", "event/show", "k1")
    first.outcome("ann", "event/show", "k1", 201, ["h1", "h1"], 200, 9, 5.0, 2)
    second.intent("bo", "event/show", "k2")
    second.outcome("bo", "event/show", "k2", 409, [], None, None, None, 1)
    second.intent("cy", "event/show", "k3")  # stopped before its outcome
    first.close()
    second.close()
    (tmp_path / "b" / "records-1.jsonl").write_text('{"i": "cut')  # a line cut by a kill
    holds = {h.key: h for h in read_client_holds(tmp_path)}
    assert holds["k1"].acked == ("h1", "h1")
    # each key's hold id is derived on reading, as rezerv derives it from the key
    assert holds["k3"].hold_id == hold_id_for("cy", "event", "show", "k3")
    assert holds["k1"].hold_id == hold_id_for("ann", "event", "show", "k1") != holds["k2"].hold_id
    assert holds["k1"].amount == 200
    assert holds["k2"].definitive_refusal
    assert holds["k3"].status == NO_OUTCOME
    assert holds["k3"].unanswered
    assert [a.hold_id for a in read_acknowledgements(tmp_path)] == ["h1"]
    assert read_outcome_counts(tmp_path) == {"acknowledged": 1, "answered 409": 1, "retried": 1}


def _result(target: str, holds: float, confirmed: float) -> dict[str, Any]:
    step = {
        "users": 64,
        "holds_per_s": holds,
        "confirmed_per_s": confirmed,
        "hold_p50_ms": 5.0,
        "hold_p99_ms": 20.0,
        "errors_by_status": {"409": 3, "503": 1},
        "held_at_end": 0,
        "drain_s": 0.0,
        "cpu_percent": {"api": 80.0, "machine total": 150.0},
        "generator_saturated": False,
    }
    return {"target": target, "steps": [step], "audit": {"ok": True, "figures": {"oversold tickets": 0}}}


def test_the_comparison_puts_rezervs_ratio_on_each_baselines_row() -> None:
    rows = comparison_rows([_result("rezerv", 3_000, 2_000), _result("select-for-update", 1_000, 1_000)])
    assert "rezerv_holds_ratio" not in rows[0]
    assert (rows[1]["rezerv_holds_ratio"], rows[1]["rezerv_confirmed_ratio"]) == ("3.00x", "2.00x")
    assert rows[1]["errors"] == 1
    assert rows[1]["refused_409"] == 3
    table = comparison_markdown([_result("rezerv", 3_000, 2_000), _result("redis-lock", 0, 0)])
    assert "| 64 | redis-lock | 0 | 0 |" in table
    assert "inf" in table


def test_cost_per_booking_divides_each_roles_cpu_by_the_work_of_the_window() -> None:
    from loadtest.http_run import cost_per_booking

    cpu = {"api": 40.0, "saga services": 30.0, "kafka": 10.0, "shards": 50.0}
    cost = cost_per_booking(cpu, window_s=10.0, holds=2_000, settled=1_600)
    assert cost["api_us_per_hold"] == 2_000.0  # 0.4 core x 10 s / 2,000 holds
    assert cost["saga_us_per_booking"] == 2_500.0  # (0.3 + 0.1) x 10 s / 1,600
    assert cost["cpu_us_per_booking"]["shards"] == 3_125.0
    assert cost_per_booking(cpu, 10.0, 0, 0)["api_us_per_hold"] is None


def _round(result: dict[str, Any], number: int, p99: float, ok: bool = True) -> dict[str, Any]:
    (step,) = result["steps"]
    step["hold_p99_ms"] = p99
    result["audit"]["ok"] = ok
    return result | {"round": number}


def test_with_two_rounds_the_comparison_divides_the_means_and_shows_each_rounds_ratio() -> None:
    results = [
        _round(_result("rezerv", 3_000, 2_000), 1, 20.0),
        _round(_result("select-for-update", 1_000, 1_000), 1, 90.0),
        _round(_result("select-for-update", 1_000, 500), 2, 110.0, ok=False),
        _round(_result("rezerv", 2_000, 1_000), 2, 30.0),
    ]
    ours, theirs = comparison_rows(results)
    assert (ours["confirmed_per_s"], theirs["confirmed_per_s"]) == (1_500, 750)
    assert theirs["rezerv_confirmed_ratio"] == "2.00x (2.00x, 2.00x)"
    assert theirs["rezerv_holds_ratio"] == "2.50x (3.00x, 2.00x)"
    assert (ours["p99_ms"], theirs["p99_ms"]) == ("20 / 30", "90 / 110")
    assert theirs["errors"] == 2  # a 503 in each round
    assert (ours["audit"], theirs["audit"]) == ("OK", "FAILED")  # one round's failed audit fails the row
    assert ROUNDS_NOTE in comparison_markdown(results)


def test_the_cores_fixed_work_is_listed_round_by_round_and_a_round_without_the_probe_shows_a_question_mark() -> None:
    first, second = _round(_result("rezerv", 3_000, 2_000), 1, 20.0), _round(_result("rezerv", 2_000, 1_000), 2, 30.0)
    first["steps"][0]["core_speed"] = {"median_ms": 7.25, "p10_ms": 7.0, "p90_ms": 8.0, "samples": 20}
    (row,) = comparison_rows([first, second])
    assert row["fixed_work_ms"] == "7.2 / ?"
    table = comparison_markdown([first, second])
    assert table.splitlines()[2].endswith("| 7.2 / ? |")
    assert CORES_NOTE in table


def _with_cores(result: dict[str, Any], median_ms: float) -> dict[str, Any]:
    result["steps"][0]["core_speed"] = {"median_ms": median_ms, "p10_ms": median_ms, "p90_ms": median_ms, "samples": 20}
    return result


def test_steps_whose_medians_agree_but_whose_cores_were_slow_for_part_of_one_differ_by_their_means() -> None:
    partly_slow = {"mean_ms": 2.7, "median_ms": 2.0, "p10_ms": 2.0, "p90_ms": 3.4, "samples": 20}
    fast = {"mean_ms": 2.0, "median_ms": 2.0, "p10_ms": 2.0, "p90_ms": 2.0, "samples": 20}
    assert cores_differ({"core_speed": partly_slow}, {"core_speed": fast})
    medians_only = {k: v for k, v in partly_slow.items() if k != "mean_ms"}  # a summary from before the mean
    assert not cores_differ({"core_speed": medians_only}, {"core_speed": fast})
    result = _round(_result("rezerv", 2_000, 1_000), 1, 20.0)
    result["steps"][0]["core_speed"] = partly_slow
    (row,) = comparison_rows([result])
    assert row["fixed_work_ms"] == "2.7"


def test_a_rounds_ratio_between_steps_on_cores_of_different_speed_is_marked() -> None:
    results = [
        _with_cores(_round(_result("rezerv", 3_000, 2_000), 1, 20.0), 1.6),
        _with_cores(_round(_result("conditional-update", 1_000, 1_000), 1, 90.0), 2.6),  # slower cores
        _with_cores(_round(_result("conditional-update", 1_000, 1_000), 2, 90.0), 1.7),
        _with_cores(_round(_result("rezerv", 2_000, 1_500), 2, 30.0), 1.6),  # within 25%: not marked
        _round(_result("conditional-update", 1_000, 1_000), 3, 90.0),  # no probe: not marked
        _with_cores(_round(_result("rezerv", 2_000, 1_000), 3, 30.0), 1.6),
    ]
    _ours, theirs = comparison_rows(results)
    assert theirs["rezerv_confirmed_ratio"] == "1.50x (2.00x*, 1.50x, 1.00x)"


def test_one_round_is_shown_as_it_ran_without_a_note() -> None:
    results = [_result("rezerv", 3_000, 2_000), _result("redis-lock", 1_000, 1_000)]
    ours, theirs = comparison_rows(results)
    assert theirs["rezerv_confirmed_ratio"] == "2.00x"
    assert ours["p99_ms"] == "20"
    assert ROUNDS_NOTE not in comparison_markdown(results)


def _costing(result: dict[str, Any], own: dict[str, float | None], generator: float) -> dict[str, Any]:
    result["steps"][0]["cpu_us_per_booking"] = own | {
        "load generator": generator,
        "loadtest driver": 7.0,
        "outside this run": 300.0,
        "machine total": 9_999.0,
    }
    return result


def test_the_cost_table_sums_the_systems_own_processes_and_divides_rezervs_by_each_baselines() -> None:
    results = [
        _costing(_round(_result("rezerv", 3_000, 2_000), 1, 20.0), {"api": 500.0, "postgres": 500.0}, 600.0),
        _costing(_round(_result("conditional-update", 1_000, 1_000), 1, 90.0), {"baseline api": 2_000.0}, 800.0),
        _costing(_round(_result("conditional-update", 1_000, 1_000), 2, 90.0), {"baseline api": 3_000.0}, 700.0),
        _costing(_round(_result("rezerv", 2_000, 1_500), 2, 30.0), {"api": 900.0, "postgres": 600.0}, 700.0),
    ]
    ours, theirs = comparison_rows(results)
    assert (ours["own_us"], ours["generator_us"]) == (1_250.0, 650.0)  # neither the driver nor the rest counted
    assert (theirs["own_us"], theirs["generator_us"]) == (2_500.0, 750.0)
    assert theirs["rezerv_own_ratio"] == "0.50x (0.50x, 0.50x)"
    assert "rezerv_own_ratio" not in ours
    table = comparison_markdown(results)
    assert "| 64 | conditional-update | 2,500 | 750 | 0.50x (0.50x, 0.50x) |" in table
    assert COST_NOTE in table


def test_a_rounds_own_cpu_ratio_between_steps_on_cores_of_different_speed_is_marked() -> None:
    def step(target: str, round_: int, cores_ms: float, own_us: float) -> dict[str, Any]:
        result = _round(_result(target, 1_000, 1_000), round_, 20.0)
        return _costing(_with_cores(result, cores_ms), {"api": own_us}, 600.0)

    results = [
        step("rezerv", 1, 1.6, 1_000.0),
        step("conditional-update", 1, 2.6, 2_000.0),  # slower cores: marked
        step("conditional-update", 2, 1.7, 2_000.0),
        step("rezerv", 2, 1.6, 1_500.0),  # within 25%: not marked
    ]
    _ours, theirs = comparison_rows(results)
    assert theirs["rezerv_own_ratio"] == "0.62x (0.50x*, 0.75x)"


def test_a_step_that_settled_no_booking_has_no_cost_and_no_cost_ratio() -> None:
    results = [
        _costing(_result("rezerv", 0, 0), {"api": None, "postgres": None}, 600.0),
        _costing(_result("redis-lock", 1_000, 1_000), {"baseline api": 2_000.0}, 800.0),
    ]
    ours, theirs = comparison_rows(results)
    assert ours["own_us"] is None
    assert theirs["rezerv_own_ratio"] == "n/a"
    assert "| 64 | rezerv | ? | 600 | - |" in comparison_markdown(results)


def test_a_comparison_without_cpu_per_booking_has_no_cost_table() -> None:
    assert COST_NOTE not in comparison_markdown([_result("rezerv", 3_000, 2_000), _result("redis-lock", 1, 1)])


def test_every_second_round_of_compare_runs_the_targets_in_the_reverse_order() -> None:
    from loadtest.http_cli import compare_order

    order = compare_order(("redis-lock", "rezerv", "conditional-update"), rounds=3)
    assert order == [
        ["rezerv", "conditional-update", "redis-lock"],
        ["redis-lock", "conditional-update", "rezerv"],
        ["rezerv", "conditional-update", "redis-lock"],
    ]


@pytest.mark.parametrize("rounds", ["0", "-1", "two"])
def test_compare_refuses_a_number_of_rounds_below_one(rounds: str, capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest.http_cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare", "--rounds", rounds])
    assert "is not a number of rounds" in capsys.readouterr().err
