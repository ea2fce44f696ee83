"""Every shard and saga service process serves its own Prometheus metrics endpoint.

Why one endpoint per process, and not Ray's metrics export (`ray.util.metrics`):
- Ray's export renames every application metric (it puts `ray_` in front), so the names would
  differ from the API's `/metrics`, which uses prometheus_client; with an endpoint per process
  every process exports the same names the same way, and a metric moved from one process to
  another keeps its name and its dashboard panels.
- An update through Ray's export is a call into the core worker with a tags dictionary, handed
  on to the node's metrics agent; a prometheus_client update is a lock and an addition, and most
  of what a shard counts is kept as plain integers read only when scraped (collectors below). The
  hot path's cost is what matters here (a shard applies tens of thousands of commands a second).
- Between scrapes an endpoint costs nothing: prometheus_client serves it from a thread of its own,
  which renders the registry when asked (a few milliseconds every scrape).
Ray's own metrics (its agent, its service discovery file) are scraped beside them.

Where: 127.0.0.1 (REZERV_METRICS_HOST) and a port the kernel picks, so nothing needs a port
setting and no two processes on a machine collide. Prometheus finds the endpoints through the API:
`GET /metrics/targets` asks each shard and service actor for its address through Ray (an actor
that Ray restarts has a new port, found at the next refresh) and answers in Prometheus's HTTP
service-discovery format (api/metrics_targets.py).

Collectors: what a process counts as plain integers (the entity host's counters, the engine
client's queues, the saga supervisor's totals) is turned into metric families only when scraped.
A process registers its sources by name; registering a name again replaces the source, so a
restarted role never exports its series twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger("rezerv.metrics")

Source = Callable[[], Iterable[Metric]]


class _Sources(Collector):  # type: ignore[misc]
    """The process's scrape-time sources, as one prometheus_client collector."""

    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}

    def describe(self) -> list[Metric]:
        return []  # names are not checked against other collectors: sources are replaced by name

    def collect(self) -> Iterator[Metric]:
        for name, source in list(self.sources.items()):
            try:
                yield from source()
            except Exception:  # a broken source must not take the process's other metrics with it
                log.exception("metrics source %s failed", name)


_SOURCES = _Sources()
REGISTRY.register(_SOURCES)
_lock = threading.Lock()
_address: str | None = None

ENABLED = True
"""False in a process started with REZERV_METRICS=0: no endpoint, no sources (see `start`)."""


def start(settings: Any, endpoint: bool = True) -> str | None:
    """This process's metrics as REZERV_METRICS says (the one place that reads it in a process):
    on, its endpoint's "host:port" (`endpoint`: serve one; the API has its own /metrics); off,
    None, and `register_source` does nothing, so nothing is computed at a scrape either."""
    global ENABLED
    ENABLED = bool(settings.metrics)
    return serve(settings.metrics_host) if ENABLED and endpoint else None


def register_source(name: str, source: Source) -> None:
    """Export what `source()` yields at every scrape (replacing the source of the same name)."""
    if ENABLED:
        _SOURCES.sources[name] = source


def unregister_source(name: str) -> None:
    _SOURCES.sources.pop(name, None)


def serve(host: str = "127.0.0.1") -> str:
    """Start this process's metrics endpoint once (later calls return it); its "host:port"."""
    global _address
    with _lock:
        if _address is None:
            from prometheus_client import start_http_server

            server, _thread = start_http_server(0, addr=host)
            advertised = host if host not in ("", "0.0.0.0", "::") else _node_ip()
            _address = f"{advertised}:{server.server_port}"
            log.info("metrics endpoint at http://%s/metrics", _address)
    return _address


def _node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


# ---- families built from plain counts --------------------------------------------------------
def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def labelled_counter(name: str, doc: str, labels: list[str], values: Mapping[Any, float]) -> CounterMetricFamily:
    """One series per key of `values` (a tuple key for several labels, a string for one)."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in list(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def client_families(client: Any) -> Iterator[Metric]:
    """The engine client's queues (actors/client.py): commands waiting for a call slot, calls out, retries."""
    channels = list(client.channels)
    yield gauge(
        "rezerv_engine_queued_commands",
        "Commands waiting in this process's engine client for a free call slot to their shard (client-side queue)",
        sum(len(c.queue) for c in channels),
    )
    yield gauge(
        "rezerv_engine_calls_in_flight", "Ray calls to shards awaiting their answer", sum(c.in_flight for c in channels)
    )
    yield counter(
        "rezerv_engine_retries",
        "Commands sent again after a transient failure (same idempotency key)",
        sum(c.retries for c in channels),
    )
