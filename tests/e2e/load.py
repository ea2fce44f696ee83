"""A small, bounded hold load against a running `rezerv up`, recording every answer.

A few threads place holds (one ticket each, a fresh Idempotency-Key each) for a fixed time at a
modest rate, and keep what each request got: status, Retry-After, the hold id if granted, and
how long it took. Stdlib HTTP only (urllib), loopback only, stops by itself.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    key: str
    customer: str
    status: int  # 0: no HTTP answer (connection refused or timed out)
    started: float  # monotonic
    seconds: float
    hold_id: str | None = None
    retry_after: str | None = None
    code: str = ""  # the problem's code for a 4xx/5xx answer, to say why in a failed assertion


def post_hold(
    base: str, event_id: str, token: str, key: str, timeout_s: float = 30
) -> tuple[int, dict[str, object], str | None]:
    request = urllib.request.Request(
        f"{base}/events/{event_id}/holds",
        method="POST",
        data=json.dumps({"quantities": {"std": 1}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get("Retry-After")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), err.headers.get("Retry-After")
    except (OSError, ValueError):
        return 0, {}, None


@dataclass
class HoldLoad:
    base: str
    event_id: str
    tokens: dict[str, str]  # customer -> token
    rate_per_s: float = 20.0
    threads: int = 4
    tag: str = "load"
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> list[Answer]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        return list(self.answers)

    def _run(self, index: int) -> None:
        customers = sorted(self.tokens)
        period = self.threads / self.rate_per_s
        n = 0
        while not self._stop.is_set():
            customer = customers[(index + n * self.threads) % len(customers)]
            key = f"{self.tag}-{index}-{n}"
            t0 = time.monotonic()
            status, body, retry_after = post_hold(self.base, self.event_id, self.tokens[customer], key)
            hold_id = str(body["hold_id"]) if status == 201 else None
            code = "" if status in (0, 201) else str(body.get("code", ""))
            answer = Answer(key, customer, status, t0, time.monotonic() - t0, hold_id, retry_after, code)
            with self._lock:
                self.answers.append(answer)
            n += 1
            self._stop.wait(max(0.0, period - (time.monotonic() - t0)))
