"""PostgreSQL's statements per booking over a step's window (loadtest/pg_statements.py)."""

from __future__ import annotations

from loadtest.pg_statements import StatementCounters, describe, per_booking


def counters(queryid: int, calls: int, time_ms: float, rows: int, query: str = "") -> StatementCounters:
    return StatementCounters(queryid, query or f"SELECT {queryid}", calls, time_ms, rows)


def test_the_window_is_the_counters_at_its_end_less_those_at_its_start_costliest_first() -> None:
    before = [counters(1, 100, 50.0, 100), counters(2, 10, 5.0, 1000), counters(3, 7, 1.0, 7)]
    after = [counters(1, 300, 90.0, 300), counters(2, 12, 65.0, 1200), counters(3, 7, 1.0, 7)]
    table = per_booking(before, after, bookings=200)
    assert table is not None
    assert [s["statement"] for s in table["statements"]] == ["SELECT 2", "SELECT 1"]  # 3 did not run
    assert table["statements"][0] == {
        "statement": "SELECT 2",
        "us_per_booking": 300.0,  # 60 ms over 200 bookings
        "calls_per_booking": 0.01,
        "rows_per_call": 100.0,
    }
    assert table["statements"][1]["us_per_booking"] == 200.0
    assert table["statements"][1]["calls_per_booking"] == 1.0
    assert (table["bookings"], table["us_per_booking"], table["calls_per_booking"]) == (200, 500.0, 1.01)


def test_a_statement_first_seen_or_counted_afresh_in_the_window_counts_from_zero() -> None:
    before = [counters(1, 500, 100.0, 500)]  # evicted and counted again since: fewer calls than before
    after = [counters(1, 20, 4.0, 20), counters(9, 5, 1.0, 5)]
    table = per_booking(before, after, bookings=10)
    assert table is not None
    assert {s["statement"]: s["calls_per_booking"] for s in table["statements"]} == {"SELECT 1": 2.0, "SELECT 9": 0.5}


def test_only_the_costliest_are_listed_but_all_are_in_the_total() -> None:
    after = [counters(i, 1, float(i), 1) for i in range(1, 21)]
    table = per_booking([], after, bookings=1, top=3)
    assert table is not None
    assert [s["statement"] for s in table["statements"]] == ["SELECT 20", "SELECT 19", "SELECT 18"]
    assert table["us_per_booking"] == sum(range(1, 21)) * 1000


def test_a_window_that_settled_no_booking_has_no_table() -> None:
    assert per_booking([], [counters(1, 1, 1.0, 1)], bookings=0) is None


def test_a_statement_is_shown_on_one_line_however_it_was_written() -> None:
    query = "SELECT a,\n       b\n  FROM t\n WHERE c = $1"
    table = per_booking([], [counters(1, 2, 1.0, 4, query)], bookings=1)
    assert table is not None
    assert table["statements"][0]["statement"] == "SELECT a, b FROM t WHERE c = $1"
    lines = describe(table, width=20).splitlines()
    assert "1000.0 us per booking in all" in lines[0]
    assert lines[1].endswith("SELECT a, b FROM t W")
    assert "2.0 calls" in lines[1]
    assert "2.0 rows/call" in lines[1]
