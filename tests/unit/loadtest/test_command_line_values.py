"""`rezerv loadtest` refuses a value it cannot run with before anything starts, naming the flag and
what it expected; every value it can run with is taken as given."""

from __future__ import annotations

import pytest

from loadtest.http_cli import build_parser


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--users", "0", "a list of user counts, each 1 or more"),
        ("--users", "16,0,64", "a list of user counts, each 1 or more"),
        ("--users", "abc", "a list of user counts, each 1 or more"),
        ("--users", ",", "a list of user counts, each 1 or more"),
        ("--window", "-5", "a number of seconds above 0"),
        ("--window", "0", "a number of seconds above 0"),
        ("--window", "inf", "a number of seconds above 0"),
        ("--window", "nan", "a number of seconds above 0"),
        ("--warm-up", "-1", "a number of seconds, 0 or more"),
        ("--read-after", "-1", "a number of seconds, 0 or more"),
        ("--drain-timeout", "0", "a number of seconds above 0"),
        ("--customers", "0", "a whole number, 1 or more"),
        ("--customers", "1.5", "a whole number, 1 or more"),
        ("--locust-processes", "0", "a number of processes (1 or more, or -1: one per core)"),
        ("--locust-processes", "-2", "a number of processes (1 or more, or -1: one per core)"),
        ("--logins-per-s", "-3", "a rate, 0 or more"),
        ("--watch", "-1", "a whole number, 0 or more"),
        ("--think-ms", "-5", "a whole number, 0 or more"),
        ("--events", "0", "a whole number, 1 or more"),
        ("--cars", "0", "a whole number, 1 or more"),
        ("--web-port", "70000", "a port number (1 to 65535)"),
    ],
)
def test_a_value_the_run_cannot_use_is_refused_naming_the_flag_and_what_it_expected(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refusal(capsys, "run", f"{flag}={value}")
    assert f"argument {flag}: {value!r} is not {expected}" in err


def test_compare_checks_the_same_values() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare", "--users", "0"])


def test_values_the_run_can_use_are_taken_as_given() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "--users",
            "1, 16,64",
            "--window",
            "0.5",
            "--warm-up",
            "0",
            "--read-after",
            "0",
            "--customers",
            "1",
            "--locust-processes=-1",
            "--watch",
            "0",
            "--think-ms",
            "0",
            "--web-port",
            "65535",
        ]
    )
    assert args.users == (1, 16, 64)
    assert (args.window, args.warm_up, args.read_after) == (0.5, 0.0, 0.0)
    assert (args.customers, args.locust_processes, args.watch, args.think_ms, args.web_port) == (1, -1, 0, 0, 65535)


def test_the_defaults_are_what_the_readme_documents() -> None:
    args = build_parser().parse_args(["run"])
    assert args.users == (16, 64, 256, 1024)
    assert (args.window, args.warm_up, args.customers, args.locust_processes) == (20.0, 3.0, 1_000, 1)
