"""The dashboard's PNG keeps a panel readable when its label set changed over the window."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from stack.dashboard_render import LEGEND_MAX, _legend


def _legend_of(labels: list[str]) -> list[str]:
    """The legend `_legend` draws for a panel with one series per label."""
    figure, ax = plt.subplots()
    try:
        for n, label in enumerate(labels):
            ax.plot([0, 1], [n, n], label=label)
        _legend(ax)
        legend = ax.get_legend()
        assert legend is not None, "the panel has a legend"
        return [t.get_text() for t in legend.get_texts()]
    finally:
        plt.close(figure)


def test_a_panel_with_more_series_than_the_legend_holds_lists_the_first_and_counts_the_rest() -> None:
    texts = _legend_of([f"wallet/{n:03d}" for n in range(30)])
    assert len(texts) == LEGEND_MAX
    assert texts[: LEGEND_MAX - 1] == [f"wallet/{n:03d}" for n in range(LEGEND_MAX - 1)]
    assert texts[-1] == f"... and {30 - (LEGEND_MAX - 1)} more"


def test_a_panel_with_few_series_lists_every_one() -> None:
    assert _legend_of(["shard-0", "shard-1", "shard-2"]) == ["shard-0", "shard-1", "shard-2"]
