"""A saga consumer that keeps up fetches at most every `min_interval_s`; one that is behind, or
that found nothing, fetches again at once."""

from __future__ import annotations

import pytest

from engine.adapters.kafka_consumer import MessageConsumer, fetch_pause_s, fetch_wait_ms
from engine.config import ConfigError, Settings


def test_a_consumer_that_keeps_up_waits_for_the_rest_of_the_interval() -> None:
    assert fetch_pause_s(0.05, 0.01, last_count=3, batch_max=500) == pytest.approx(0.04)


def test_a_consumer_whose_batch_took_longer_than_the_interval_fetches_at_once() -> None:
    assert fetch_pause_s(0.05, 0.2, last_count=3, batch_max=500) == 0.0


def test_a_consumer_that_is_behind_never_waits() -> None:
    assert fetch_pause_s(0.05, 0.0, last_count=500, batch_max=500) == 0.0


def test_an_empty_fetch_is_followed_by_a_fetch_at_once_since_the_fetch_itself_waits_for_data() -> None:
    assert fetch_pause_s(0.05, 0.0, last_count=0, batch_max=500) == 0.0


def test_no_interval_means_no_wait() -> None:
    assert fetch_pause_s(0.0, 0.0, last_count=1, batch_max=500) == 0.0


@pytest.mark.parametrize("value", ["-1", "1001"])
def test_the_saga_batch_interval_is_refused_outside_0_to_1000_ms(value: str) -> None:
    with pytest.raises(ConfigError, match="SAGA_BATCH_INTERVAL_MS"):
        Settings.from_env({"REZERV_SAGA_BATCH_INTERVAL_MS": value}).validate()


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_the_catalog_interval_is_refused_outside_0_to_1_s(value: str) -> None:
    with pytest.raises(ConfigError, match="CATALOG_INTERVAL_S"):
        Settings.from_env({"REZERV_CATALOG_INTERVAL_S": value}).validate()


def test_the_broker_holds_a_fetch_as_long_as_the_consumer_paces_itself_within_50_to_500_ms() -> None:
    assert fetch_wait_ms(0.0) == 50, "an unpaced consumer keeps fetches short: tansu answers at the end of the wait"
    assert fetch_wait_ms(0.2) == 200
    assert fetch_wait_ms(1.0) == 500


async def _nothing(_messages: object) -> None:
    return None


async def _none_processed(_ids: list[str]) -> set[str]:
    return set()


def test_a_consumer_takes_its_fetch_wait_from_its_pace_unless_told() -> None:
    def consumer(**kwargs: object) -> MessageConsumer:
        return MessageConsumer("127.0.0.1:1", "t", "g", "c", _nothing, _none_processed, partitions=1, **kwargs)  # type: ignore[arg-type]

    assert consumer(min_interval_s=0.2).fetch_max_wait_ms == 200
    assert consumer().fetch_max_wait_ms == 50
    assert consumer(min_interval_s=0.2, fetch_max_wait_ms=80).fetch_max_wait_ms == 80
