"""Catalog browsing for Locust: what a visitor does before booking, as a TaskSet any user can run.

A session searches events (words, filters, sorts, sometimes the next page), looks for cars free
for a window, and opens one event or car; then it hands control back to its user
(`interrupt`), so a browse-and-book user alternates browsing sessions with its own bookings.
What the session found is left on the user for booking tasks to use:

    user.catalog_picks  # deque of ("event", event_id, tier) and ("car", car_id, start, end), newest last

Plugging it into a user class (any HttpUser or FastHttpUser; reads need no token):

    from loadtest.scenarios_catalog import CatalogBrowsing

    class Browser(FastHttpUser):
        tasks = {CatalogBrowsing: 6, ...the user's own booking tasks...: 1}

If the user has `stop_after_window()` (the load-test suite's users do), the session calls it
before every request. Request names group by route and kind of query ("GET /events?q",
"GET /cars?window", ...), so Locust's table reads per kind of search.

`CATALOG_MIX` picks what a session does: "mixed" (default), "search" (event searches only) or
"cars" (car availability only): the benchmarks measure each alone.
"""

from __future__ import annotations

import os
import random
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

from locust import TaskSet, task

from loadtest.catalog_words import EVENT_SORTS, LOCATIONS, VENUES, WORDS

PICKS_KEPT = 20


def _mix() -> str:
    return os.environ.get("CATALOG_MIX", "mixed")


class CatalogBrowsing(TaskSet):
    """One browsing session (2 to 6 catalog reads), then back to the user."""

    def on_start(self) -> None:
        self.rng = random.Random()
        self.left = self.rng.randint(2, 6)
        self.picks: deque[tuple[Any, ...]] = self.user.__dict__.setdefault("catalog_picks", deque(maxlen=PICKS_KEPT))

    # ---- plumbing ----
    def _read(self, path: str, name: str) -> dict[str, Any] | None:
        stop = getattr(self.user, "stop_after_window", None)
        if stop is not None:
            stop()
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}")
                return None
            body: dict[str, Any] = response.json()
        self.left -= 1
        if self.left <= 0:
            self.interrupt(reschedule=False)  # type: ignore[no-untyped-call]
        return body

    def _keep(self, pick: tuple[Any, ...]) -> None:
        self.picks.append(pick)

    def _window(self) -> tuple[date, date]:
        start = datetime.now(UTC).date() + timedelta(days=self.rng.randint(7, 330))
        return start, start + timedelta(days=self.rng.randint(2, 10))

    # ---- what a visitor does ----
    @task(4)
    def search_events(self) -> None:
        if _mix() == "cars":
            self.find_a_car()
            return
        query = f"q={self.rng.choice(WORDS)}&limit=20"
        if self.rng.random() < 0.5:
            query += "&tickets_left=true"
        body = self._read(f"/events?{query}", "GET /events?q")
        self._follow(body, f"/events?{query}", "GET /events?q (next page)")

    @task(3)
    def filter_events(self) -> None:
        if _mix() == "cars":
            self.find_a_car()
            return
        month = self.rng.randint(1, 11)
        query = (
            f"starts_from=2027-{month:02d}-01&starts_to=2027-{month + 1:02d}-01"
            f"&price_max={self.rng.choice([3000, 5000, 8000, 20000])}&sort={self.rng.choice(EVENT_SORTS)}&limit=20"
        )
        if self.rng.random() < 0.3:
            query += "&venue=" + self.rng.choice(VENUES).replace(" ", "%20")
        body = self._read(f"/events?{query}", "GET /events?filters")
        self._follow(body, f"/events?{query}", "GET /events?filters (next page)")

    @task(3)
    def find_a_car(self) -> None:
        if _mix() == "search":
            self.search_events()
            return
        start, end = self._window()
        query = f"location={self.rng.choice(LOCATIONS)}&available_from={start}&available_to={end}&limit=20"
        if self.rng.random() < 0.3:
            query += f"&price_max={self.rng.choice([6000, 8000, 10000])}"
        body = self._read(f"/cars?{query}", "GET /cars?window")
        if body and body["items"]:
            car = self.rng.choice(body["items"])
            self._keep(("car", car["car_id"], start.isoformat(), end.isoformat()))

    @task(1)
    def open_one(self) -> None:
        if _mix() != "mixed" or not self.picks:
            (self.find_a_car if _mix() == "cars" else self.search_events)()
            return
        pick = self.rng.choice(list(self.picks))
        kind = "events" if pick[0] == "event" else "cars"
        self._read(f"/{kind}/{pick[1]}", f"GET /{kind}/{{id}}")

    def _follow(self, body: dict[str, Any] | None, path: str, name: str) -> None:
        if not body:
            return
        for item in body["items"][:3]:
            open_tiers = [t["name"] for t in item["tiers"] if t["available"] > 0]
            if open_tiers:
                self._keep(("event", item["event_id"], self.rng.choice(open_tiers)))
        if body["next_cursor"] and self.rng.random() < 0.3 and self.left > 0:
            self._read(f"{path}&cursor={body['next_cursor']}", name)
