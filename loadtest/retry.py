"""How a load-test customer retries a hold: the same Idempotency-Key, never a new one.

A network error (no HTTP answer) or a 503 is retried after a short, growing pause (the API's
Retry-After, when it sends one, is the pause); a 429 is the API shedding load, so the customer
waits exactly the Retry-After it names before trying again. Every other answer is final: 201 is
the hold, 4xx a refusal. Attempts are bounded so a run always ends.
"""

from __future__ import annotations

from dataclasses import dataclass

NETWORK_ERROR = 0  # the status recorded for a request that got no HTTP answer


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # one try and up to five retries
    first_pause_s: float = 0.05
    max_pause_s: float = 2.0
    default_retry_after_s: float = 1.0  # a 429 that names no Retry-After

    def pause(self, status: int, retry_after: str | None, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1` after `status` (NETWORK_ERROR for none);
        None when the answer is final or the attempts are used up."""
        if status not in (NETWORK_ERROR, 429, 503) or attempt >= self.max_attempts:
            return None
        named = _seconds(retry_after)
        if status == 429:
            return named if named is not None else self.default_retry_after_s
        backoff = min(self.max_pause_s, self.first_pause_s * 2 ** (attempt - 1))
        return min(self.max_pause_s, named) if named is not None else backoff


def _seconds(header: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is not used by the API)."""
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if value >= 0 else None
