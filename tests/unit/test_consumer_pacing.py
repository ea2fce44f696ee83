"""A saga consumer that keeps up fetches at most every `min_interval_s`; one that is behind, or
that found nothing, fetches again at once."""

from __future__ import annotations

import pytest

from engine.adapters.kafka_consumer import fetch_pause_s
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
