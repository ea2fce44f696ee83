"""A step summary with every field `describe_step` prints, for tests of what it prints."""

from __future__ import annotations

from typing import Any


def printable_step(**fields: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "target": "rezerv",
        "users": 16,
        "requests_per_s": 80.0,
        "holds_per_s": 40.0,
        "confirmed_per_s": 40.0,
        "released_per_s": 0.0,
        "hold_p50_ms": 9.0,
        "hold_p99_ms": 30.0,
        "hold_to_confirmed_p50_ms": 500.0,
        "hold_to_confirmed_p99_ms": 800.0,
        "held_at_end": 0,
        "drain_s": 0.0,
        "errors_by_status": {},
        "booking_reads_404": 0,
        "generator_saturated": False,
        "routes": {},
        "cpu_percent": {"api": 30.0},
        "api_us_per_hold": 150.0,
        "saga_us_per_booking": 300.0,
        "cpu_us_per_booking": {"api": 100.0},
    }
    return step | fields
