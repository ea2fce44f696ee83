"""`rezerv top`: the system at a glance, refreshed every second, from the metrics every process exports.

It reads the same endpoints Prometheus scrapes (the API's `/metrics/targets` lists them) and shows
rates computed from two consecutive scrapes: holds granted and refused, confirmations, HTTP
answers and errors, the saga's backlog (consumer lag, outbox and projection lag) and its step
latencies (p50/p99 of the histograms' increase over the interval), and the busiest entities.
No Prometheus is needed. In a terminal it redraws the screen; `--plain` (or output that is not a
terminal) prints one block per refresh, `--count N` stops after N refreshes.

The arithmetic (`view`) is pure and tested on scrape texts; only `scrape` does I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from engine.config import Settings

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """Every sample of every endpoint at one moment: (name, labels) -> value, summed over processes."""

    at: float
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)
    gauges_by_process: dict[tuple[str, Labels, str], float] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)

    def add(self, process: str, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.startswith("rezerv_"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.samples[key] = self.samples.get(key, 0.0) + sample.value
                self.gauges_by_process[(sample.name, key[1], process)] = sample.value

    def total(self, name: str, **match: str) -> float:
        return sum(v for (n, labels), v in self.samples.items() if n == name and _matches(labels, match))

    def by(self, name: str, label: str, **match: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for (n, labels), value in self.samples.items():
            if n == name and _matches(labels, match):
                out[dict(labels).get(label, "")] += value
        return dict(out)

    def max_over_processes(self, name: str) -> float | None:
        """A gauge several processes export with the same meaning (the outbox lag): the largest."""
        values = [v for (n, _labels, _p), v in self.gauges_by_process.items() if n == name]
        return max(values) if values else None


def _matches(labels: Labels, match: dict[str, str]) -> bool:
    if not match:
        return True
    as_dict = dict(labels)
    return all(as_dict.get(k) == v for k, v in match.items())


def quantile(q: float, before: Scrape, after: Scrape, name: str) -> float | None:
    """The q-quantile of histogram `name`'s observations between two scrapes (as PromQL's
    histogram_quantile over an increase), None when nothing was observed."""
    buckets: dict[float, float] = defaultdict(float)
    for (n, labels), value in after.samples.items():
        if n != f"{name}_bucket":
            continue
        le = float(dict(labels)["le"])
        buckets[le] += value - before.samples.get((n, labels), 0.0)
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span if span else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def view(before: Scrape, after: Scrape, busiest: int = 5) -> list[str]:
    """The lines of one refresh."""
    dt = max(after.at - before.at, 1e-9)

    def rate(name: str, **match: str) -> float:
        return max(0.0, after.total(name, **match) - before.total(name, **match)) / dt

    def rates_by(name: str, label: str, **match: str) -> dict[str, float]:
        now, then = after.by(name, label, **match), before.by(name, label, **match)
        return {k: max(0.0, v - then.get(k, 0.0)) / dt for k, v in now.items()}

    def ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000:.0f} ms"

    statuses = rates_by("rezerv_http_requests_total", "status")
    errors_5xx = sum(v for s, v in statuses.items() if s.startswith("5"))
    refused = {k: v for k, v in rates_by("rezerv_holds_refused_total", "reason").items() if v > 0}
    lag = after.by("rezerv_consumer_lag_messages", "consumer")
    outbox = after.max_over_processes("rezerv_outbox_lag_events")
    projection = after.max_over_processes("rezerv_projection_lag_events")
    lines = [
        f"rezerv top  {time.strftime('%H:%M:%S', time.localtime(after.at))}  (every {dt:.1f} s; Ctrl-C quits)",
        "",
        f"holds granted    {rate('rezerv_holds_granted_total'):>9.1f}/s   refused {sum(refused.values()):.1f}/s "
        + " ".join(f"{k}={v:.1f}" for k, v in sorted(refused.items())),
        f"confirmations    {rate('rezerv_saga_bookings_total', outcome='confirmed'):>9.1f}/s   "
        f"released {rate('rezerv_saga_bookings_total', outcome='released'):.1f}/s   "
        f"payments failed {rate('rezerv_saga_payments_total', result='failed'):.1f}/s",
        f"HTTP requests    {sum(statuses.values()):>9.1f}/s   5xx {errors_5xx:.1f}/s   "
        f"429 {statuses.get('429', 0.0):.1f}/s",
        f"saga backlog     {sum(lag.values()):>9.0f} messages   "
        + "  ".join(f"{k}={v:.0f}" for k, v in sorted(lag.items()))
        + f"   outbox lag {_count(outbox)}   projection lag {_count(projection)}",
        f"saga latency     hold->decided p50 {ms(quantile(0.5, before, after, 'rezerv_saga_hold_to_decided_seconds'))}"
        f" p99 {ms(quantile(0.99, before, after, 'rezerv_saga_hold_to_decided_seconds'))}   "
        f"decided->confirmed p50 {ms(quantile(0.5, before, after, 'rezerv_saga_decided_to_confirmed_seconds'))}"
        f" p99 {ms(quantile(0.99, before, after, 'rezerv_saga_decided_to_confirmed_seconds'))}",
        f"group commits    p99 {ms(quantile(0.99, before, after, 'rezerv_group_commit_seconds'))}   "
        f"engine calls p99 {ms(quantile(0.99, before, after, 'rezerv_engine_call_seconds'))}",
        f"errors           consumer retries {rate('rezerv_consumer_handler_failures_total'):.1f}/s   "
        f"commit failures {rate('rezerv_commit_failures_total'):.1f}/s   "
        f"engine retries {rate('rezerv_engine_retries_total'):.1f}/s",
        "",
        "busiest entities (commands/s)",
    ]
    entities = rates_by("rezerv_entity_commands_total", "entity")
    ranked = sorted(((v, k) for k, v in entities.items() if v > 0), reverse=True)[:busiest]
    lines += [f"  {v:>10.1f}  {k}" for v, k in ranked] or ["  (none busy)"]
    if after.down:
        lines += ["", "not answering: " + ", ".join(after.down)]
    return lines


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# ---- I/O -------------------------------------------------------------------------------------------
def _get(url: str, timeout_s: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return bytes(reply.read())


def targets(api_url: str, timeout_s: float = 3.0) -> list[tuple[str, str]]:
    """(process, metrics URL) of every endpoint the API lists."""
    listed = json.loads(_get(f"{api_url}/metrics/targets", timeout_s))
    return [
        (str(t.get("labels", {}).get("process", address)), f"http://{address}/metrics")
        for t in listed
        for address in t.get("targets", [])
    ]


async def scrape(endpoints: Iterable[tuple[str, str]], timeout_s: float = 2.0) -> Scrape:
    endpoints = list(endpoints)
    result = Scrape(time.time())
    texts = await asyncio.gather(
        *(asyncio.to_thread(_get, url, timeout_s) for _, url in endpoints), return_exceptions=True
    )
    for (process, _url), text in zip(endpoints, texts, strict=True):
        if isinstance(text, BaseException):
            result.down.append(process)
        else:
            result.add(process, text.decode("utf-8", "replace"))
    return result


def run_top(interval_s: float = 1.0, count: int = 0, plain: bool | None = None, api_url: str = "") -> int:
    settings = Settings.from_env()
    api_url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    plain = (not sys.stdout.isatty()) if plain is None else plain
    try:
        endpoints = targets(api_url)
    except OSError as exc:
        print(f"rezerv top: the API at {api_url} does not answer ({exc}); is `rezerv up` running?", file=sys.stderr)
        return 1
    before = asyncio.run(scrape(endpoints))
    shown = 0
    try:
        while not count or shown < count:
            time.sleep(interval_s)
            if shown % 10 == 9:  # an actor Ray restarted has a new endpoint
                with contextlib.suppress(OSError):
                    endpoints = targets(api_url)
            after = asyncio.run(scrape(endpoints))
            lines = view(before, after)
            if plain:
                print("\n".join(lines) + "\n", flush=True)
            else:
                sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
                sys.stdout.flush()
            before = after
            shown += 1
    except KeyboardInterrupt:
        pass
    return 0
