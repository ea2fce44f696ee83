"""`rezerv dashboard render`: the Grafana dashboard's panels drawn as one PNG, from a real Prometheus.

For a picture of the dashboard where no Grafana runs (it is not a Debian or pip package): every
panel of observability/grafana/rezerv-dashboard.json, its queries evaluated by Prometheus's
range-query API over the chosen window, each series drawn under its legend, in the dashboard's
rows. The queries are the dashboard's own, unchanged (only Grafana's `$__` variables would need
substituting, and the dashboard uses none). Needs matplotlib (the `dev` extra).
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "observability" / "grafana" / "rezerv-dashboard.json"


def query_range(prometheus: str, expr: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step_s})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as reply:
        body = json.loads(reply.read())
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or str(labels)


def render(prometheus: str, out: Path, minutes: float, end: float | None = None, dashboard: Path = DASHBOARD) -> int:
    """Draw every panel over the last `minutes` (ending at `end`, default now); returns the panel count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    spec = json.loads(dashboard.read_text())
    panels = [p for p in spec["panels"] if p["type"] == "timeseries"]
    end = end or time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    columns = 3
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 3.4 * rows), squeeze=False)
    for index, panel in enumerate(panels):
        ax = axes[index // columns][index % columns]
        for target in panel["targets"]:
            for series in query_range(prometheus, target["expr"], start, end, step):
                points = [(float(t), float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points:
                    continue
                xs = [mdates.date2num(_utc(t)) for t, _ in points]  # type: ignore[no-untyped-call]
                ax.plot(
                    xs,
                    [v for _, v in points],
                    linewidth=1,
                    label=legend(target.get("legendFormat", ""), series["metric"]),
                )
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ax.set_title(f"{panel['title']}" + (f" [{unit}]" if unit not in ("", "short") else ""), fontsize=9)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlim(mdates.date2num(_utc(start)), mdates.date2num(_utc(end)))  # type: ignore[no-untyped-call]
        if ax.lines:
            _legend(ax)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=8, color="grey")
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.suptitle(
        f"{spec['title']}: {len(panels)} panels of {dashboard.name}, queried from Prometheus "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))}-{time.strftime('%H:%M UTC', time.gmtime(end))}",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return len(panels)


LEGEND_MAX = 12  # a panel whose label set changed over the window (the busiest entities) lists this many


def _legend(ax: Any) -> None:
    """The panel's legend, cut to LEGEND_MAX entries so that it never covers the figure below."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > LEGEND_MAX:
        more = len(handles) - (LEGEND_MAX - 1)
        handles = [*handles[: LEGEND_MAX - 1], Line2D([], [], linestyle="none")]
        labels = [*labels[: LEGEND_MAX - 1], f"... and {more} more"]
    ax.legend(handles, labels, fontsize=6, loc="upper left", ncol=2)


def _utc(epoch_s: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, UTC)
