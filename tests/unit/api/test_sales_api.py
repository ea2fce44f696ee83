"""GET /sales and the sales metrics on /metrics, over the in-memory sales read model."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from engine.config import Settings
from tests.sales_events import batch, confirmed, expired, held
from tests.unit.api.conftest import Api, api_over
from tests.unit.local_shard import local_inventory


async def _sell(api: Api) -> None:
    sales = api.http.app.app.state.sales  # type: ignore[attr-defined]
    await sales.apply(batch(held("gala", "g1", 2, 4_000), held("gala", "g2", 1, 2_000), held("fair", "f1", 5, 500)))
    await sales.apply(batch(confirmed("event/gala", "g1"), expired("event/gala", "g2"), confirmed("event/fair", "f1")))


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_an_admin_reads_the_best_selling_entities_and_the_totals(api: Api) -> None:
    await _sell(api)
    reply = await api.http.get("/sales?limit=1", headers=api.admin)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert [e["entity"] for e in body["entities"]] == ["event/gala"]
    assert body["totals"]["sold_units"] == 7
    assert body["totals"]["revenue"] == 4_500
    gala = await api.http.get("/sales/events/gala", headers=api.admin)
    assert gala.json()["released"]["expired"] == 1
    assert gala.json()["net_units"] == 2


async def test_sales_are_for_admins_and_unknown_entities_are_404(api: Api) -> None:
    assert (await api.http.get("/sales", headers=api.alice)).status == 403
    assert (await api.http.get("/sales/events/nothing-sold", headers=api.admin)).status == 404


async def test_metrics_export_sales_totals_bookings_by_status_and_the_top_entities(settings: Settings) -> None:
    inventory = local_inventory()
    api = api_over(settings.replace(metrics_top_entities=1), inventory)
    await _sell(api)
    samples = _samples((await api.http.get("/metrics")).body.decode())
    await inventory.stop()
    assert samples[("rezerv_sales_units_total", (("outcome", "sold"),))] == 7
    assert samples[("rezerv_sales_amount_minor_units_total", (("outcome", "confirmed"),))] == 4_500
    assert samples[("rezerv_sales_released_bookings_total", (("reason", "expired"),))] == 1
    assert samples[("rezerv_bookings", (("status", "CONFIRMED"),))] == 2
    assert samples[("rezerv_entity_sold_units_total", (("entity", "event/gala"),))] == 2
    assert ("rezerv_entity_revenue_minor_units_total", (("entity", "event/fair"),)) not in samples  # top 1 only


async def test_metrics_count_token_cache_hits_and_misses(api: Api) -> None:
    before = _samples((await api.http.get("/metrics")).body.decode())
    for _ in range(3):
        await api.http.get("/bookings/none", headers=api.alice)  # a route that reads the token
    after = _samples((await api.http.get("/metrics")).body.decode())
    hits = ("rezerv_token_cache_reads_total", (("result", "hit"),))
    assert after[hits] - before.get(hits, 0) >= 2
