"""Locust scenarios (locustfiles): `locust -f loadtest/scenarios/flash_sale.py --population FILE ...`.

Importing any of these modules imports Locust, which monkey-patches the standard library with
gevent: only Locust itself should import them, never the tests or rezerv's processes.
"""
