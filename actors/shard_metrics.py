"""A shard's metrics, built when scraped from the counts its entity host keeps as plain integers.

Nothing here runs on the hot path: the host adds to integers per run of commands (holds granted,
refusals by code, commands per entity), and this turns them into metric families in the metrics
endpoint's thread (actors/process_metrics.py). Reading plain integers and copying small dicts
there is safe under the interpreter lock. Per-entity series are bounded: only the busiest
REZERV_METRICS_TOP_ENTITIES entities of the shard (engine/busiest.py), so a shard hosting 100,000
entities still exports a handful of series; the set changes as entities heat up and cool down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from actors.process_metrics import counter, gauge, labelled_counter

if TYPE_CHECKING:
    from actors.shard import ShardActor


# Series exported at 0 before anything happened, so that a family exists (and a dashboard query on
# it works) before its first event; other label values appear when they first occur.
_NO_REFUSALS = {("event", "sold-out"): 0, ("car", "interval-unavailable"): 0}
_NO_FAILURES = {"ownership-lost": 0, "concurrency-conflict": 0, "store-unavailable": 0}


def shard_families(shard: ShardActor) -> Iterator[Metric]:
    yield gauge(
        "rezerv_shard_calls_in_progress",
        "Ray calls this shard is working on (applying, or waiting for their group commit): its queue depth",
        shard.calls_in_progress,
    )
    host = shard.host
    if host is None:  # no call yet: the host (and its connections) is created on the first one
        return
    stats = dict(host.stats)
    committer = host.committer
    yield counter("rezerv_shard_batches", "Batches (Ray calls, expiry sweeps) applied by this shard", stats["batches"])
    yield counter("rezerv_shard_commands", "Commands applied by this shard", stats["commands"])
    yield labelled_counter(
        "rezerv_holds_granted",
        "New holds granted (retries answered again are not counted)",
        ["kind"],
        host.holds_granted,
    )
    refused = {**_NO_REFUSALS, **host.holds_refused}
    yield labelled_counter(
        "rezerv_holds_refused", "Holds refused, by entity kind and reason (the problem code)", ["kind", "reason"],
        refused,
    )  # fmt: skip
    yield counter("rezerv_holds_expired", "Holds this shard expired when their time ran out", host.upkeep.expired)
    yield gauge("rezerv_entities_in_memory", "Entities active in this shard's memory", len(host.entities))
    yield counter(
        "rezerv_entity_activations",
        "Entities loaded into memory (an entity asked for that was not in memory: a cache miss)",
        stats["activations"],
    )
    yield counter(
        "rezerv_entity_evictions", "Entities dropped from memory after a failed commit or lost ownership",
        stats["evictions"],
    )  # fmt: skip
    yield counter("rezerv_entity_passivations", "Idle entities dropped from memory", host.upkeep.passivations)
    yield counter("rezerv_snapshots", "Entity snapshots taken", stats["snapshots"])
    yield labelled_counter(
        "rezerv_commit_failures", "Streams whose events a group commit did not make durable, by error code", ["code"],
        {**_NO_FAILURES, **host.failures},
    )  # fmt: skip
    yield gauge(
        "rezerv_group_commit_queued_events",
        "Events applied in memory and waiting for a group commit to start",
        sum(group.event_count for group in list(committer.queue)),
    )
    yield gauge("rezerv_group_commits_in_flight", "Group commits sent and not answered yet", len(committer.in_flight))
    yield labelled_counter(
        "rezerv_entity_commands",
        "Commands applied per entity since it was activated, for the shard's busiest entities only (bounded)",
        ["entity"],
        dict(host.busiest.top()),
    )
