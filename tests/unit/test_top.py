"""`rezerv top`'s arithmetic on two scrapes: rates, quantiles of a histogram's increase, the busiest."""

from __future__ import annotations

import pytest

from stack.top import Scrape, quantile, view

BEFORE = """
rezerv_holds_granted_total{kind="event"} 100
rezerv_holds_refused_total{kind="event",reason="sold-out"} 0
rezerv_saga_bookings_total{outcome="confirmed"} 50
rezerv_http_requests_total{route="/events/{event_id}/holds",method="POST",status="201"} 100
rezerv_entity_commands_total{entity="event/gala"} 1000
rezerv_entity_commands_total{entity="wallet/alice"} 10
rezerv_saga_hold_to_decided_seconds_bucket{le="0.1"} 10
rezerv_saga_hold_to_decided_seconds_bucket{le="0.25"} 10
rezerv_saga_hold_to_decided_seconds_bucket{le="+Inf"} 10
rezerv_saga_hold_to_decided_seconds_count 10
"""

AFTER = """
rezerv_holds_granted_total{kind="event"} 300
rezerv_holds_refused_total{kind="event",reason="sold-out"} 20
rezerv_saga_bookings_total{outcome="confirmed"} 150
rezerv_http_requests_total{route="/events/{event_id}/holds",method="POST",status="201"} 300
rezerv_http_requests_total{route="/events/{event_id}/holds",method="POST",status="503"} 4
rezerv_entity_commands_total{entity="event/gala"} 3000
rezerv_entity_commands_total{entity="wallet/alice"} 12
rezerv_consumer_lag_messages{consumer="payment-worker",topic="bookings",partition="0"} 7
rezerv_saga_hold_to_decided_seconds_bucket{le="0.1"} 10
rezerv_saga_hold_to_decided_seconds_bucket{le="0.25"} 110
rezerv_saga_hold_to_decided_seconds_bucket{le="+Inf"} 110
rezerv_saga_hold_to_decided_seconds_count 110
"""


def scrapes() -> tuple[Scrape, Scrape]:
    before, after = Scrape(1000.0), Scrape(1002.0)
    before.add("shard-0", BEFORE)
    after.add("shard-0", AFTER)
    return before, after


def test_rates_come_from_two_scrapes() -> None:
    lines = "\n".join(view(*scrapes()))
    assert "holds granted        100.0/s   refused 10.0/s sold-out=10.0" in lines
    assert "confirmations         50.0/s" in lines
    assert "5xx 2.0/s" in lines
    assert "saga backlog             7 messages   payment-worker=7" in lines


def test_latency_quantiles_are_of_the_increase_between_scrapes() -> None:
    before, after = scrapes()
    # all 100 new observations fell in (0.1, 0.25]: the median interpolates to the middle
    assert quantile(0.5, before, after, "rezerv_saga_hold_to_decided_seconds") == pytest.approx(0.175)
    assert quantile(0.5, after, after, "rezerv_saga_hold_to_decided_seconds") is None


def test_the_busiest_entities_rank_by_commands_per_second() -> None:
    lines = view(*scrapes())
    start = lines.index("busiest entities (commands/s)")
    assert lines[start + 1].split() == ["1000.0", "event/gala"]
    assert lines[start + 2].split() == ["1.0", "wallet/alice"]
