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


def login_users(logins_per_s: float) -> int:
    """Locust users that log in beside the bookings (--logins-per-s): enough that the rate is still
    offered when a log-in takes up to 2 s (each user waits for its answer before the next)."""
    return max(10, int(logins_per_s * 2 + 0.999)) if logins_per_s > 0 else 0
