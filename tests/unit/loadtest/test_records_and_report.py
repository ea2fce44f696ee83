"""The client records round trip, and the comparison's ratios."""

from __future__ import annotations

from pathlib import Path

from loadtest.audit_rules import NO_OUTCOME
from loadtest.records import RecordWriter, read_acknowledgements, read_client_holds, read_outcome_counts
from loadtest.report import comparison_markdown, comparison_rows


def test_records_of_several_processes_are_read_back_as_one_client_hold_per_key(tmp_path: Path) -> None:
    first, second = RecordWriter(tmp_path / "a"), RecordWriter(tmp_path / "b")
    first.intent("ann", "event/show", "k1", "h1")
    first.outcome("ann", "event/show", "k1", 201, ["h1", "h1"], 200, 9, 5.0, 2)
    second.intent("bo", "event/show", "k2", "h2")
    second.outcome("bo", "event/show", "k2", 409, [], None, None, None, 1)
    second.intent("cy", "event/show", "k3", "h3")  # stopped before its outcome
    first.close()
    second.close()
    (tmp_path / "b" / "records-1.jsonl").write_text('{"i": "cut')  # a line cut by a kill
    holds = {h.key: h for h in read_client_holds(tmp_path)}
    assert holds["k1"].acked == ("h1", "h1")
    assert holds["k1"].amount == 200
    assert holds["k2"].definitive_refusal
    assert holds["k3"].status == NO_OUTCOME
    assert holds["k3"].unanswered
    assert [a.hold_id for a in read_acknowledgements(tmp_path)] == ["h1"]
    assert read_outcome_counts(tmp_path) == {"acknowledged": 1, "answered 409": 1, "retried": 1}


def _result(target: str, holds: float, confirmed: float) -> dict[str, object]:
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
