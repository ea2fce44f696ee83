"""Hypothesis strategies for bookings projection changes, shared by the pure and the SQL tests."""

from __future__ import annotations

from hypothesis import strategies as st

from engine.projections.bookings import Booking, Change, InsertHold, SetPayment, SetStatus

HOLDS = ("h0", "h1", "h2", "h3")
STREAMS = ("event/e1", "event/e2")
STATUSES = ("HELD", "CONFIRMED", "RELEASED", "EXPIRED", "CANCELLED")
PAYMENTS = ("NONE", "SUCCEEDED", "FAILED", "REFUNDED")
REASONS = st.one_of(st.none(), st.sampled_from(("r1", "r2")))
AT = 1_800_000_000_000


def _insert(hold: str, stream: str, at: int, version: int) -> Change:
    return InsertHold(
        Booking(hold, "event", stream.split("/")[1], stream, "alice", 1000, 2, "HELD", at + 60_000, at, version)
    )


inserts = st.builds(
    _insert, st.sampled_from(HOLDS), st.sampled_from(STREAMS), st.integers(AT, AT + 10), st.integers(1, 9)
)
statuses = st.builds(
    SetStatus,
    st.sampled_from(HOLDS),
    st.sampled_from(STREAMS),
    st.sampled_from(STATUSES),
    st.sampled_from(STATUSES[1:]),
    st.integers(AT, AT + 100),
    st.integers(1, 99),
    REASONS,
)
payments = st.builds(
    SetPayment,
    st.sampled_from(HOLDS),
    st.sampled_from(STREAMS),
    st.sampled_from(PAYMENTS[:2]),
    st.sampled_from(PAYMENTS[1:]),
    st.integers(AT, AT + 100),
    st.integers(1, 99),
    REASONS,
    st.sampled_from(("wallet/alice", "payment/h0")),
)
changes = st.lists(st.one_of(inserts, statuses, payments), max_size=30)
