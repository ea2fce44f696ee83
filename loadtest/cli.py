"""`rezerv bench ...`: the benchmarks whose results are recorded in BENCHMARKS.md."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="rezerv bench")
    parser.add_subparsers(dest="which", required=True)
    parser.parse_args(list(argv))
    return 0
