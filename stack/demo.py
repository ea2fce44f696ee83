"""Demo data for `rezerv up` (filled in with the inventory routes)."""

from __future__ import annotations

from engine.config import Settings


def load_demo_data(settings: Settings) -> None:
    return None
