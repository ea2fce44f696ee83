"""Rental storm: customers booking random, overlapping intervals on a small fleet of cars.

Most attempts collide (409, dates taken): the scenario measures how a hot calendar decides, and
the audit proves no two rentals of one car overlap.
"""

from __future__ import annotations

from datetime import date, timedelta

from locust import task

from loadtest.scenarios.common import Customer


class RentalCustomer(Customer):
    @task
    def book_or_read(self) -> None:
        self.stop_after_window()
        if self.read_due():
            return
        first = date.fromisoformat(self.population.rental_first_day)
        start = first + timedelta(days=self.rng.randrange(self.population.rental_span_days))
        end = start + timedelta(days=self.rng.randint(1, 5))
        car = self.rng.choice(self.population.cars)
        self.hold("car", car, {"start": start.isoformat(), "end": end.isoformat()})
