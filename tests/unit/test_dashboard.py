"""The Grafana dashboard in the repository: well-formed, every panel has queries, and the names
its queries use are read correctly (the real-stack test checks them against what is exported:
tests/e2e/test_observability.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.promql_names import exposed_names, metric_names

DASHBOARD = Path(__file__).resolve().parents[2] / "observability" / "grafana" / "rezerv-dashboard.json"


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels if p["type"] != "row" for t in p["targets"]]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (le, route) (rate(rezerv_http_request_seconds_bucket{status=~"5.."}[1m]))',
            {"rezerv_http_request_seconds_bucket"},
        ),
        ("topk(10, rate(rezerv_entity_sold_units_total[5m]))", {"rezerv_entity_sold_units_total"}),
        ("a_total / on (x) group_left b_total * 1e3", {"a_total", "b_total"}),
        ("histogram_quantile(0.99, sum without (pod) (rate(x_bucket[1m]))) or vector(0)", {"x_bucket"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exposed_names_are_read_from_a_scrape() -> None:
    text = '# HELP a_total x\n# TYPE a_total counter\na_total{x="1"} 3\nb_bucket{le="+Inf"} 1\nc 2\n'
    assert exposed_names(text) == {"a_total", "b_bucket", "c"}


def test_every_panel_of_the_dashboard_has_queries_on_rezerv_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 18
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in panels)
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert rows == {"Throughput", "Latency", "Saga", "Errors", "Sales", "Infrastructure"}
    names = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert {"rezerv_holds_granted_total", "rezerv_saga_hold_to_decided_seconds_bucket"} <= names
