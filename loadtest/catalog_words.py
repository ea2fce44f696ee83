"""What catalog visitors search for, shared by the Locust task set and the wrk benchmark (a module
of its own: importing Locust monkey-patches the process for gevent, which asyncio code must not get)."""

from __future__ import annotations

WORDS = [
    "jazz", "opera", "festival", "comedy", "theatre", "lights", "night", "nordic", "arctic", "rock",
    "folk", "swing", "quartet", "gala", "voices", "echoes", "midnight", "aurora", "harbour", "polar",
    "oslo", "bergen", "trondheim", "stavanger", "tromso", "stockholm",
]  # fmt: skip
VENUES = ["Grieghallen, Bergen", "Oslo Spektrum, Oslo", "Olavshallen, Trondheim", "Cirkus, Stockholm"]
LOCATIONS = ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromso", "Stockholm", "Gothenburg", "Copenhagen"]
EVENT_SORTS = ["starts_at", "-starts_at", "price", "-price"]
