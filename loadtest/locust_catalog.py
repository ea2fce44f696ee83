"""Locust file for the catalog benchmarks (BENCHMARKS.md): visitors browsing, nothing else.

    CATALOG_MIX=search CATALOG_WAIT=0.5,1.5 locust -f loadtest/locust_catalog.py --headless \\
        -u 64 -r 64 -t 60s --host http://127.0.0.1:8000 --csv results/catalog

CATALOG_MIX: mixed, search (event searches only) or cars (car availability only);
CATALOG_WAIT: "low,high" seconds between a user's requests (think time), "0" for none.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from locust import FastHttpUser, between, constant

from loadtest.scenarios_catalog import CatalogBrowsing


def _wait() -> Callable[..., float]:
    spec = os.environ.get("CATALOG_WAIT", "0.5,1.5")
    if spec.strip() in ("", "0"):
        return constant(0)
    low, high = (float(x) for x in spec.split(","))
    return between(low, high)


class CatalogVisitor(FastHttpUser):
    tasks = [CatalogBrowsing]
    wait_time = _wait()
