"""wrk's answers become the audit's client records; its options are checked before a run starts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from api.hold_keys import hold_id_for
from loadtest.audit_rules import NO_OUTCOME
from loadtest.http_cli import build_parser, generator_problem
from loadtest.population import FLASH_SALE, Customer
from loadtest.records import read_client_holds
from loadtest.wrk_step import (
    RECORDS_FILE,
    WrkMissing,
    convert_records,
    find_wrk,
    lua_script,
    parse_summary,
    wrk_argv,
)

CUSTOMERS = [Customer("ann", "tok-ann"), Customer("bo", "tok-bo")]


def _raw(directory: Path, thread: int, lines: list[str]) -> None:
    (directory / f"wrk-raw-{thread}.txt").write_text("".join(lines))


def test_a_201_is_matched_to_its_key_through_the_hold_id_and_written_as_a_client_record(tmp_path: Path) -> None:
    granted = hold_id_for("bo", "event", "show", "r-0-2")
    _raw(
        tmp_path,
        0,
        [
            "i 1 r-0-1\n",  # ann, refused
            "i 2 r-0-2\n",  # bo, granted
            "i 1 r-0-3\n",  # ann, still in flight when wrk stopped
            "o 409\n",
            f"o 201 {granted} 300 1700000000000 1700000000\n",
        ],
    )
    answers = convert_records(tmp_path, tmp_path, CUSTOMERS, "event", "show")
    assert (answers.sent, answers.acknowledged, answers.unmatched) == (3, 1, 0)
    assert answers.statuses == {"409": 1, "201": 1}
    assert answers.keys() == {"acknowledged": 1, "not acknowledged": 2}
    holds = {h.key: h for h in read_client_holds(tmp_path)}
    assert holds["r-0-2"].customer == "bo"
    assert holds["r-0-2"].acked == (granted,)
    assert holds["r-0-2"].amount == 300
    assert holds["r-0-2"].entity == "event/show"
    # A refusal cannot be matched to its key (its body names no hold): the key stays unknown to
    # the audit, like one whose answer never came.
    assert holds["r-0-1"].status == NO_OUTCOME
    assert holds["r-0-3"].status == NO_OUTCOME


def test_a_201_for_a_hold_no_key_derives_is_counted_as_unmatched_not_acknowledged(tmp_path: Path) -> None:
    _raw(tmp_path, 0, ["i 1 r-0-1\n", "o 201 00000000-0000-5000-8000-000000000000 100 - 1\n"])
    answers = convert_records(tmp_path, tmp_path, CUSTOMERS, "event", "show")
    assert (answers.acknowledged, answers.unmatched) == (0, 1)
    assert all(not h.acked for h in read_client_holds(tmp_path))


def test_lines_of_several_threads_are_read_together_and_a_line_cut_by_the_end_is_skipped(tmp_path: Path) -> None:
    first = hold_id_for("ann", "event", "show", "r-0-1")
    second = hold_id_for("ann", "event", "show", "r-1-1")
    _raw(tmp_path, 0, ["i 1 r-0-1\n", f"o 201 {first} 100 - 5\n"])
    _raw(tmp_path, 1, ["i 1 r-1-1\n", f"o 201 {second} 100 - 5\n", "i 2 r-1-"])  # cut mid-line
    answers = convert_records(tmp_path, tmp_path, CUSTOMERS, "event", "show")
    assert (answers.sent, answers.acknowledged) == (2, 2)
    assert (tmp_path / RECORDS_FILE).read_text().count("\n") == 4  # two intents, two outcomes


def test_the_script_refuses_an_empty_population_and_names_every_customer_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one customer"):
        lua_script([], "/events/e/holds", "std", "run", tmp_path)
    with pytest.raises(ValueError, match="ASCII"):
        lua_script([Customer("zoë", "t")], "/events/e/holds", "std", "run", tmp_path)
    script = lua_script(CUSTOMERS, "/events/e/holds", "std", "run", tmp_path)
    assert script.count('"Bearer tok-ann"') == 1
    assert '"/events/e/holds"' in script
    assert str(tmp_path / "wrk-raw-") in script


def test_wrk_runs_one_thread_for_the_window_with_a_timeout_longer_than_a_saturated_api_answers() -> None:
    argv = wrk_argv("/usr/bin/wrk", "http://127.0.0.1:8000", 256, 59.6, Path("s.lua"))
    assert argv[:4] == ["/usr/bin/wrk", "-t1", "-c256", "-d60s"]
    assert argv[argv.index("--timeout") + 1] == "30s"
    assert argv[-1] == "http://127.0.0.1:8000"


def test_the_summary_is_the_line_the_script_printed_and_its_absence_is_an_error() -> None:
    out = 'Running 1s test\nrezerv-wrk-summary {"requests": 5, "p50_us": 900}\nRequests/sec: 5\n'
    assert parse_summary(out) == {"requests": 5, "p50_us": 900}
    with pytest.raises(ValueError, match="no summary"):
        parse_summary("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_a_missing_wrk_is_named_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loadtest.wrk_step.shutil.which", lambda _name: None)
    with pytest.raises(WrkMissing, match="apt install wrk"):
        find_wrk()


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_wrk_is_refused_for_other_scenarios_and_with_locust_only_options() -> None:
    assert generator_problem(_args(), FLASH_SALE) is None  # Locust: nothing to check
    assert "flash sale only" in str(generator_problem(_args("--generator", "wrk"), "rental-storm"))
    problem = str(generator_problem(_args("--generator", "wrk", "--watch", "3", "--locust-processes", "2"), FLASH_SALE))
    assert "--watch" in problem
    assert "--locust-processes" in problem


def test_wrk_missing_is_a_problem_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loadtest.wrk_step.shutil.which", lambda _name: None)
    assert "not on PATH" in str(generator_problem(_args("--generator", "wrk"), FLASH_SALE))


def test_a_think_time_makes_each_connection_pause_between_an_answer_and_its_next_hold(tmp_path: Path) -> None:
    assert "function delay()" not in lua_script(CUSTOMERS, "/events/e/holds", "std", "run", tmp_path)
    paced = lua_script(CUSTOMERS, "/events/e/holds", "std", "run", tmp_path, think_ms=60)
    assert "function delay()\n  return 60\nend" in paced
    with pytest.raises(ValueError, match="0 or more"):
        lua_script(CUSTOMERS, "/events/e/holds", "std", "run", tmp_path, think_ms=-1)


def test_a_think_time_is_refused_for_locust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loadtest.wrk_step.shutil.which", lambda _name: "/usr/bin/wrk")
    assert "for --generator wrk" in str(generator_problem(_args("--think-ms", "50"), FLASH_SALE))
    assert generator_problem(_args("--generator", "wrk", "--think-ms", "50"), FLASH_SALE) is None
