"""The metric names a PromQL expression refers to (for the dashboard test), without a PromQL parser:
strings, label matchers, `by (...)`/`without (...)` label lists, ranges and numbers are removed,
and of the identifiers left, those called like functions and the operator keywords are dropped."""

from __future__ import annotations

import re

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)")


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, called = match.group(0), match.group(1)
        if called or name in _KEYWORDS:
            continue
        start = match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):  # the exponent of 1e3
            continue
        names.add(name)
    return names


def exposed_names(exposition: str) -> set[str]:
    """The sample names in a Prometheus text exposition (as scraped: _bucket, _total included)."""
    names = set()
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
