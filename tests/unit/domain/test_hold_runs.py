"""`TicketedEvent.hold_run` against `handle`, one hold at a time: the same answers, the same
events byte for byte, the same state, and a replay of its events that rebuilds that state.

The run handler exists only to make the hot path cheaper, so it is tested as an equivalence:
random runs of holds (granted, sold out, retried with the same or another body, malformed, over
the per-booking limit, on closed sales, after the event's start, over several tiers, retries of
bookings since confirmed, released or cancelled) on two copies of one event.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import codec
from engine.domain.commands import CancelBooking, CloseSales, Command, ConfirmBooking, HoldTickets, ReleaseHold
from engine.domain.errors import DomainError
from engine.domain.events import TicketsHeld
from engine.domain.results import HoldGranted
from engine.domain.tickets import TicketedEvent
from tests.unit.domain.builders import STARTS_AT_MS, T0, hold, ticketed_event

TIERS = (("std", 5000, 12), ("vip", 9000, 3))
HOLD_IDS = [f"h{i}" for i in range(10)]

quantities = st.one_of(
    st.tuples(st.tuples(st.sampled_from(["std", "vip", "nope"]), st.integers(min_value=-1, max_value=5))),
    st.tuples(st.tuples(st.just("std"), st.integers(1, 3)), st.tuples(st.just("vip"), st.integers(1, 2))),
    st.tuples(st.tuples(st.just("std"), st.just(1)), st.tuples(st.just("std"), st.just(1))),  # a tier twice
    st.just(()),
)
holds = st.builds(
    HoldTickets,
    st.just("e1"),
    st.sampled_from([*HOLD_IDS, ""]),
    st.sampled_from(["alice", "bob", ""]),
    quantities,
    st.sampled_from([60_000, 5_000, 0, 10**12]),
)


moves = st.lists(
    st.tuples(st.sampled_from(HOLD_IDS), st.sampled_from([ConfirmBooking, ReleaseHold, CancelBooking])), max_size=6
)
# When the run happens: long before the start, just before it, at it, after it.
run_times = st.sampled_from([T0 + 1_000, STARTS_AT_MS - 1, STARTS_AT_MS, STARTS_AT_MS + 60_000])


def lifecycle(agg: TicketedEvent, steps: list[tuple[str, type[Command]]], now: int) -> None:
    """Move earlier bookings on (confirm, release, cancel), so that retries meet every status."""
    for hold_id, kind in steps:
        with contextlib.suppress(DomainError):
            agg.handle(kind("e1", "event", hold_id), now)  # type: ignore[call-arg]
        agg.take_pending()


def one_by_one(agg: TicketedEvent, commands: list[HoldTickets], now: int) -> tuple[list[Any], list[tuple[str, bytes]]]:
    answers: list[Any] = []
    events: list[tuple[str, bytes]] = []
    for command in commands:
        try:
            answers.append(agg.handle(command, now))
        except DomainError as err:
            answers.append(err)
        events.extend(codec.encode_named_record(e) for e in agg.take_pending())
    return answers, events


def same_answer(a: Any, b: Any) -> bool:
    if isinstance(a, DomainError):
        return type(a) is type(b) and a.message == b.message
    return bool(a == b)


def two_copies(limit: int, closed: bool) -> tuple[TicketedEvent, TicketedEvent]:
    copies = []
    for _ in range(2):
        agg = ticketed_event(tiers=TIERS, limit=limit)
        if closed:
            agg.handle(CloseSales("e1"), T0)
            agg.take_pending()
        copies.append(agg)
    return copies[0], copies[1]


@settings(max_examples=300, deadline=None)
@given(
    earlier=st.lists(holds, max_size=6),
    steps=moves,
    limit=st.sampled_from([0, 3]),
    closed=st.booleans(),
    now=run_times,
    data=st.data(),
)
def test_a_run_answers_records_and_changes_exactly_what_single_holds_do(
    earlier: list[HoldTickets],
    steps: list[tuple[str, type[Command]]],
    limit: int,
    closed: bool,
    now: int,
    data: st.DataObject,
) -> None:
    # Exact repeats of earlier holds make the run meet retries as often as new holds.
    command = st.one_of(holds, st.sampled_from(earlier)) if earlier else holds
    run = data.draw(st.lists(command, min_size=1, max_size=25), label="run")
    single, batched = two_copies(limit, closed)
    for agg in (single, batched):
        one_by_one(agg, earlier, T0)
        lifecycle(agg, steps, T0 + 500)

    expected_answers, expected_events = one_by_one(single, run, now)
    answers, events, held = batched.hold_run(run, now)

    assert len(answers) == len(run)
    for got, want in zip(answers, expected_answers, strict=True):
        assert same_answer(got, want), (got, want)
    assert events == expected_events
    assert batched.pending == [], "a run builds no event objects"
    assert batched.version == single.version
    assert batched.to_state() == single.to_state()
    batched.check_invariants()
    new_holds = [codec.decode_record(data) for _, data in events]
    assert held == [(e.hold_id, e.expires_at) for e in new_holds if isinstance(e, TicketsHeld)]


def test_replaying_a_runs_events_rebuilds_its_state() -> None:
    agg = ticketed_event(tiers=TIERS)
    run = [hold("e1", f"h{i}", ("std", 2), customer=f"c{i}") for i in range(8)]  # 12 std: the 7th is refused
    answers, events, held = agg.hold_run(run, T0)
    assert [type(a) for a in answers].count(HoldGranted) == 6
    assert len(events) == len(held) == 6
    rebuilt = ticketed_event(tiers=TIERS)
    for _, data in events:
        rebuilt.apply(codec.decode_record(data))
    assert rebuilt.version == agg.version
    assert rebuilt.to_state() == agg.to_state()


def test_a_run_after_the_start_refuses_new_holds_and_answers_retries_with_their_status() -> None:
    agg = ticketed_event(tiers=TIERS)
    agg.hold_run([hold("e1", "h0", ("std", 1)), hold("e1", "h1", ("std", 1))], T0)
    agg.handle(ConfirmBooking("e1", "event", "h1"), T0)
    answers, events, held = agg.hold_run(
        [hold("e1", "h0", ("std", 1)), hold("e1", "h1", ("std", 1)), hold("e1", "h2", ("std", 1))], STARTS_AT_MS
    )
    assert [a.status if isinstance(a, HoldGranted) else type(a).__name__ for a in answers] == [
        "HELD",
        "CONFIRMED",
        "EventStarted",
    ]
    assert (events, held) == ([], [])
