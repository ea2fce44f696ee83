"""What PostgreSQL's statements cost per booking over a step's window, from pg_stat_statements.

Why: CPU per process says PostgreSQL took, say, 300 us a booking, not which statements; and on
this project the answer decided what to change (the group commit, a read model's insert, the
log's reads). With `REZERV_PG_STATEMENTS=1` the embedded PostgreSQL counts every statement's
calls, time and rows (stack/servers.py); a step reads the counters when its window opens and when
it closes, and the difference divided by the bookings the window settled is the table
`rezerv loadtest run` prints and keeps in each step's summary.json (`pg_statements`).

Pure: the load test's targets read the counters (loadtest/targets.py, `read_statement_counters`).
The time is pg_stat_statements' own: planning plus execution inside the server, wall time, so on a
busy machine it includes a statement's waits for a core and for locks; it excludes the client's
work and the network. Without the extension (the default) a step has no such table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TOP = 12  # statements listed per step; the rest are summed into the total
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class StatementCounters:
    """One statement's running totals, as pg_stat_statements keeps them."""

    queryid: int
    query: str
    calls: int
    time_ms: float
    rows: int


def per_booking(
    before: Sequence[StatementCounters], after: Sequence[StatementCounters], bookings: int, top: int = TOP
) -> dict[str, Any] | None:
    """The window's statements (counters `after` less `before`), the costliest first: time in us
    per booking, calls per booking, rows per call; None if no booking was settled.

    A statement first seen in the window counts from zero. pg_stat_statements may evict a rarely
    run statement and count it afresh later; one whose counters went down is taken as new."""
    if bookings <= 0:
        return None
    earlier = {c.queryid: c for c in before}
    moved: list[tuple[float, int, int, str]] = []
    for c in after:
        was = earlier.get(c.queryid)
        if was is not None and c.calls >= was.calls:
            calls, time_ms, rows = c.calls - was.calls, c.time_ms - was.time_ms, c.rows - was.rows
        else:
            calls, time_ms, rows = c.calls, c.time_ms, c.rows
        if calls > 0:
            moved.append((time_ms, calls, rows, c.query))
    moved.sort(key=lambda m: m[0], reverse=True)
    total_ms = sum(m[0] for m in moved)
    return {
        "bookings": bookings,
        "us_per_booking": round(total_ms * 1000 / bookings, 1),
        "calls_per_booking": round(sum(m[1] for m in moved) / bookings, 3),
        "statements": [
            {
                "statement": _SPACES.sub(" ", query).strip(),
                "us_per_booking": round(time_ms * 1000 / bookings, 1),
                "calls_per_booking": round(calls / bookings, 4),
                "rows_per_call": round(rows / calls, 1),
            }
            for time_ms, calls, rows, query in moved[:top]
        ],
    }


def describe(table: dict[str, Any], width: int = 90, lines: int = 6) -> str:
    """The table's first `lines` statements as lines of a step's report."""
    head = (
        f"      PostgreSQL's statements: {table['us_per_booking']} us per booking in all, "
        f"{table['calls_per_booking']} statements per booking; the costliest:"
    )
    rows = [
        f"        {s['us_per_booking']:>7} us  {s['calls_per_booking']:>7} calls  {s['rows_per_call']:>7} rows/call"
        f"  {s['statement'][:width]}"
        for s in table["statements"][:lines]
    ]
    return "\n".join([head, *rows])
