"""When the saga supervisor sends a stuck step's message again: at once, then less and less often.

Why: a hold nobody decided is re-sent after REZERV_SAGA_RETRY_AFTER_S, and its sweep runs every
REZERV_EXPIRY_SWEEP_S (2 s). While the payment worker is down (or the broker), nothing decides
it, so without a back-off every sweep re-sent the same oldest holds, up to a batch of 500 every
2 s: 250 messages a second piling up in the broker for as long as the outage lasts, each a
duplicate the worker must read and drop once it is back. One re-send is enough when the broker
lost a message; more only help once whatever was down is up again.

So each message is re-sent when it first comes due, then after the delay it was first due after
(the retry delay), doubled each time up to `max_interval_ms`: with the defaults (10 s, 60 s) at
10, 20, 40, 60, 60, ... seconds after the one before. A hold of the default ten minutes is then
sent about a dozen times in the worst case instead of some three hundred, and a message the
broker lost while the worker was down goes out again within a minute of its return.

Pure and in memory: a restarted supervisor starts again from a first re-send, which is safe
(every re-send carries its original message id, and every step is idempotent). It remembers only
the messages of its latest sweep, so it stays as small as a batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class _Sent:
    interval_ms: int  # how long after this re-send the next one is due
    next_ms: int


class ResendBackoff:
    def __init__(self, first_interval_ms: int, max_interval_ms: int) -> None:
        if first_interval_ms <= 0 or max_interval_ms < first_interval_ms:
            raise ValueError(
                f"re-send intervals: the first ({first_interval_ms} ms) must be positive and at most "
                f"the largest ({max_interval_ms} ms)"
            )
        self.first_interval_ms = first_interval_ms
        self.max_interval_ms = max_interval_ms
        self._sent: dict[Hashable, _Sent] = {}

    def due(self, keys: Iterable[K], now_ms: int) -> list[K]:
        """The keys among `keys` (the messages a sweep found stuck, each already past the retry
        delay) to send now. Every key not among `keys` is forgotten; call `sent` once the due ones
        went out (a publish that failed does not count as a re-send)."""
        found = list(keys)
        before = self._sent
        self._sent = {key: before[key] for key in found if key in before}
        return [key for key in found if key not in before or now_ms >= before[key].next_ms]

    def sent(self, keys: Iterable[Hashable], now_ms: int) -> None:
        """Record `keys` as sent at `now_ms`: a first re-send waits the first interval for the
        next, each later one twice the interval before, up to the largest."""
        for key in keys:
            before = self._sent.get(key)
            interval = self.first_interval_ms if before is None else min(before.interval_ms * 2, self.max_interval_ms)
            self._sent[key] = _Sent(interval, now_ms + interval)

    def __len__(self) -> int:
        return len(self._sent)
