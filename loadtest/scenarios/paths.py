"""Where each scenario's locustfile is, and the files they share with `rezerv loadtest`.

Safe to import anywhere (no Locust, no gevent): the orchestrator and the tests use it.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.population import BROWSE_AND_BOOK, FLASH_SALE, RENTAL_STORM

HERE = Path(__file__).parent
SCENARIO_FILES = {
    FLASH_SALE: HERE / "flash_sale.py",
    RENTAL_STORM: HERE / "rental_storm.py",
    BROWSE_AND_BOOK: HERE / "browse_and_book.py",
}
WINDOW_FILE = "window.json"  # written by the master when the window starts: {"start", "end", "users"}
LOGIN_USERS = 10  # Locust users that log in beside the bookings, when --logins-per-s is set
