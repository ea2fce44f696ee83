"""Numbers on rezerv's command lines are checked by the parser: a value no run can use is refused at
once, naming the flag and what was expected (stack/arguments.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from stack.arguments import COUNT, COUNT_OR_0, PORT, SECONDS, SECONDS_ABOVE_0, counts
from stack.cli import main


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (SECONDS_ABOVE_0, "0.25", 0.25),
        (SECONDS, "0", 0.0),
        (COUNT, "1", 1),
        (COUNT_OR_0, "0", 0),
        (PORT, "65535", 65535),
    ],
)
def test_a_usable_number_is_taken_as_given(parse: Callable[[str], object], text: str, value: float) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (SECONDS_ABOVE_0, "0"),
        (SECONDS_ABOVE_0, "-1"),
        (SECONDS_ABOVE_0, "inf"),
        (SECONDS_ABOVE_0, "nan"),
        (SECONDS_ABOVE_0, "soon"),
        (SECONDS, "-0.5"),
        (COUNT, "0"),
        (COUNT, "2.5"),
        (COUNT_OR_0, "-1"),
        (PORT, "0"),
        (PORT, "65536"),
    ],
)
def test_an_unusable_number_is_refused(parse: Callable[[str], object], text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{text!r} is not "):
        parse(text)


def test_a_list_of_counts_keeps_its_order_and_refuses_a_zero_or_a_word() -> None:
    parse = counts("rates")
    assert parse("200, 1000,2000") == [200, 1000, 2000]
    for text in ("0", "200,0", "fast", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a list of rates, each 1 or more"):
            parse(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["top", "--interval", "-1"], "argument --interval: '-1' is not a number of seconds above 0"),
        (["top", "--count", "-1"], "argument --count: '-1' is not a whole number, 0 or more"),
        (["dashboard", "render", "--minutes", "0"], "argument --minutes: '0' is not a number of minutes above 0"),
        (
            ["projections", "rebuild", "bookings", "--batch", "0"],
            "argument --batch: '0' is not a whole number, 1 or more",
        ),
        (["bench", "engine", "--window", "0"], "argument --window: '0' is not a number of seconds above 0"),
        (["bench", "saga", "--rates", "0"], "argument --rates: '0' is not a list of rates, each 1 or more"),
        (["loadtest", "run", "--users", "0"], "argument --users: '0' is not a list of user counts, each 1 or more"),
        (["bench", "append", "--sizes", "3y4"], "argument --sizes: '3y4' is not a list of STREAMSxEVENTS group sizes"),
        (["bench", "append", "--sizes", "1x0"], "argument --sizes: '1x0' is not a list of STREAMSxEVENTS group sizes"),
    ],
)
def test_the_rezerv_command_refuses_an_unusable_number_before_doing_anything(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
