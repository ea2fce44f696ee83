"""How many hot requests the API lets be in progress at once: Little's law on what it just did.

A request admitted while the engine is saturated waits behind the ones before it: with L in
progress and the engine completing X per second, each waits about L / X. So to keep an admitted
request's latency near a target W, at most X * W may be in progress; the rest are refused at once
(429 with Retry-After, api/edge.py) instead of queueing for seconds. X is measured, not guessed:
the completions of the last whole second, so the limit follows the machine's real speed (which
on a shared 2-core VM drifts by a quarter within minutes).

The limit never falls below `floor` (so that a short stall, when few requests complete, does not
turn ordinary traffic away) nor rises above `ceiling` (REZERV_API_MAX_IN_FLIGHT). Until the first
second has been measured it is the ceiling. Pure: the clock is given, so the tests drive it.
"""

from __future__ import annotations


class Admission:
    def __init__(self, target_s: float, floor: int, ceiling: int, now: float) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, got {floor}, {ceiling}")
        self.target_s = target_s
        self.floor = floor
        self.ceiling = ceiling
        self.limit = ceiling
        self._second_started = now
        self._completed = 0

    def admits(self, in_flight: int) -> bool:
        return in_flight < self.limit

    def completed(self, now: float) -> None:
        """Count one finished request; once a second has passed, set the limit from the rate."""
        self._completed += 1
        elapsed = now - self._second_started
        if elapsed >= 1.0:
            rate = self._completed / elapsed
            self.limit = max(self.floor, min(self.ceiling, int(rate * self.target_s)))
            self._second_started = now
            self._completed = 0
