"""The dashboard's PNG keeps a panel readable when its label set changed over the window."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from stack.dashboard_render import LEGEND_MAX, _legend


def _legend_texts(ax: Any) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None, "the panel has a legend"
    return [t.get_text() for t in legend.get_texts()]


def test_a_panel_with_more_series_than_the_legend_holds_lists_the_first_and_counts_the_rest() -> None:
    figure, ax = plt.subplots()
    for n in range(30):
        ax.plot([0, 1], [n, n], label=f"wallet/{n:03d}")
    _legend(ax)
    texts = _legend_texts(ax)
    plt.close(figure)
    assert len(texts) == LEGEND_MAX
    assert texts[: LEGEND_MAX - 1] == [f"wallet/{n:03d}" for n in range(LEGEND_MAX - 1)]
    assert texts[-1] == f"... and {30 - (LEGEND_MAX - 1)} more"


def test_a_panel_with_few_series_lists_every_one() -> None:
    figure, ax = plt.subplots()
    for n in range(3):
        ax.plot([0, 1], [n, n], label=f"shard-{n}")
    _legend(ax)
    texts = _legend_texts(ax)
    plt.close(figure)
    assert texts == ["shard-0", "shard-1", "shard-2"]
