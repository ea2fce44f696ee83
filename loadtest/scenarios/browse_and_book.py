"""Browse and book: mostly catalog reads, some bookings, across many events and cars.

Reads use the routes that exist today (an event's tiers, a car's calendar, a customer's own
bookings and wallet); when catalog routes (lists, search) exist, they belong here.
"""

from __future__ import annotations

from datetime import date, timedelta

from locust import task

from loadtest.scenarios.common import Customer


class Browser(Customer):
    @task(8)
    def look_at_an_event(self) -> None:
        self.stop_after_window()
        event = self.rng.choice(self.population.events)
        self.get(f"/events/{event['event_id']}", "GET /events/{id}", self.customer()[1])

    @task(4)
    def look_at_a_car(self) -> None:
        self.stop_after_window()
        self.get(f"/cars/{self.rng.choice(self.population.cars)}", "GET /cars/{id}", self.customer()[1])

    @task(2)
    def look_at_my_bookings(self) -> None:
        self.stop_after_window()
        customer, token = self.customer()
        self.get(f"/customers/{customer}/bookings?limit=20", "GET /customers/{id}/bookings", token)

    @task(2)
    def look_at_my_wallet(self) -> None:
        self.stop_after_window()
        customer, token = self.customer()
        self.get(f"/wallets/{customer}", "GET /wallets/{id}", token)

    @task(2)
    def book_tickets(self) -> None:
        self.stop_after_window()
        if self.read_due():
            return
        event = self.rng.choice(self.population.events)
        tier = self.rng.choice(event["tiers"])
        self.hold("event", event["event_id"], {"quantities": {tier: self.rng.randint(1, 4)}})

    @task(1)
    def book_a_car(self) -> None:
        self.stop_after_window()
        if self.read_due():
            return
        first = date.fromisoformat(self.population.rental_first_day)
        start = first + timedelta(days=self.rng.randrange(self.population.rental_span_days * 6))
        end = start + timedelta(days=self.rng.randint(1, 7))
        self.hold("car", self.rng.choice(self.population.cars), {"start": start.isoformat(), "end": end.isoformat()})
