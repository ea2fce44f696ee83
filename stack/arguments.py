"""Numbers on the command line, checked by the parser before anything starts.

A value no run can use (0 users, a negative window, an interval of -1 s) used to be taken as given:
`rezerv loadtest run --users 0` started a whole stack and then failed with a ZeroDivisionError,
`--window -5` with "Locust did not start the window", and `rezerv top --interval -1` with
time.sleep's ValueError. Each of these argparse types refuses such a value at once, in argparse's
own words: `argument --window: '-5' is not a number of seconds above 0` (exit status 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def number(
    kind: Callable[[str], float], what: str, least: float, above: bool = False, most: float = math.inf
) -> Callable[[str], Any]:
    """An argparse type: `text` as `kind` (int or float), finite, at least `least` (above it, if
    `above`) and at most `most`; otherwise an error naming `what` was expected."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not least <= value <= most or (above and value == least):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


SECONDS_ABOVE_0 = number(float, "a number of seconds above 0", 0.0, above=True)
SECONDS = number(float, "a number of seconds, 0 or more", 0.0)
COUNT = number(int, "a whole number, 1 or more", 1)
COUNT_OR_0 = number(int, "a whole number, 0 or more", 0)
RATE = number(float, "a rate, 0 or more", 0.0)
PORT = number(int, "a port number (1 to 65535)", 1, most=65535)


def counts(what: str) -> Callable[[str], list[int]]:
    """An argparse type for a comma-separated list of whole numbers, each 1 or more (`16,64,256`),
    in the order given; `what` names them in the error."""

    def parse(text: str) -> list[int]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of {what}, each 1 or more (16,64,256)")
        return [int(part) for part in parts]

    return parse
