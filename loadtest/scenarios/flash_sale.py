"""Flash sale: many customers, one hot event; each books 1-4 tickets and reads its booking once.

    locust -f loadtest/scenarios/flash_sale.py --population FILE --records-dir DIR [--window S]

(`rezerv loadtest run --scenario flash-sale` writes the population and runs this headless, step
by step; see README.md.)
"""

from __future__ import annotations

from locust import task

from loadtest.scenarios.common import Customer, LoggingIn

__all__ = ["FlashSaleCustomer", "LoggingIn"]  # LoggingIn: log-ins beside the bookings (--logins-per-s)


class FlashSaleCustomer(Customer):
    @task
    def book_or_read(self) -> None:
        self.stop_after_window()
        if self.read_due():
            return
        event = self.population.events[0]
        self.hold("event", event["event_id"], {"quantities": {event["tiers"][0]: self.rng.randint(1, 4)}})
