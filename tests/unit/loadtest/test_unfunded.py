"""`rezerv loadtest run --unfunded SHARE`: customers left without money, so the saga's failure
path (payment refused, hold released) is measured like its success path."""

from __future__ import annotations

import pytest

from loadtest.http_cli import _options, build_parser
from loadtest.http_run import after_the_window, describe_step, unfunded_customers
from loadtest.population import FLASH_SALE, plan
from loadtest.targets import Quiet, WindowFigures
from stack.demo import DemoRequest
from tests.unit.loadtest.steps import printable_step


def deposited(requests: list[DemoRequest]) -> set[str]:
    return {r.path.split("/")[2] for r in requests if r.path.startswith("/wallets/")}


def test_the_last_customers_of_the_share_get_no_deposit() -> None:
    ids, requests, _ = plan(FLASH_SALE, "t", customers=8, events=0, cars=0, unfunded=3)
    assert deposited(requests) == set(ids[:5])
    _, everyone, _ = plan(FLASH_SALE, "t", customers=8, events=0, cars=0)
    assert deposited(everyone) == set(ids)
    with pytest.raises(ValueError, match="between 0 and the 8 customers"):
        plan(FLASH_SALE, "t", customers=8, events=0, cars=0, unfunded=9)


def test_the_share_is_parsed_into_a_number_of_customers() -> None:
    args = build_parser().parse_args(["run", "--unfunded", "0.25", "--customers", "1000"])
    assert unfunded_customers(_options(args, FLASH_SALE)) == 250
    args = build_parser().parse_args(["run"])
    assert unfunded_customers(_options(args, FLASH_SALE)) == 0


@pytest.mark.parametrize("share", ["1.5", "-0.1", "nan", "a quarter"])
def test_a_share_outside_zero_to_one_is_refused_before_anything_starts(
    share: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--unfunded", share])
    assert exit_info.value.code == 2
    assert "is not a share from 0 to 1" in capsys.readouterr().err


def test_a_step_reports_the_bookings_released_for_want_of_money_beside_the_confirmed_ones() -> None:
    figures = WindowFigures(confirmed=300, held_at_end=0, drain_s=0.0, released=100)
    quiet = Quiet(in_flight=0, held=0, waited_s=0.5)
    window = after_the_window(figures, quiet, 10.0)
    assert (window["confirmed_per_s"], window["released_per_s"]) == (30.0, 10.0)
    step = printable_step(**window)
    assert "30 confirmed/s, 10 released/s (payment failed)" in describe_step(step)
    assert "released/s" not in describe_step(step | {"released_per_s": 0.0})
