"""The Locust step's warm-up: the users run `--warm-up` seconds before the window opens."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.http_cli import _options, build_parser
from loadtest.http_run import locust_argv
from loadtest.population import FLASH_SALE

BASE_URL = "http://127.0.0.1:1"  # never reached: only the command line is built


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_a_step_warms_up_for_three_seconds_unless_told_otherwise(tmp_path: Path) -> None:
    default = locust_argv(_options(_args(), FLASH_SALE), BASE_URL, 16, tmp_path / "p.json", tmp_path)
    assert float(_value(default, "--warm-up")) == 3.0
    told = locust_argv(_options(_args("--warm-up", "0"), FLASH_SALE), BASE_URL, 16, tmp_path / "p.json", tmp_path)
    assert float(_value(told, "--warm-up")) == 0.0


def test_locusts_run_time_bound_covers_the_warm_up_as_well_as_the_window(tmp_path: Path) -> None:
    short = _options(_args("--window", "20", "--warm-up", "0"), FLASH_SALE)
    long = _options(_args("--window", "20", "--warm-up", "100"), FLASH_SALE)
    bound = [
        int(_value(locust_argv(o, BASE_URL, 16, tmp_path / "p.json", tmp_path), "--run-time").rstrip("s"))
        for o in (short, long)
    ]
    assert bound[1] - bound[0] == 100
