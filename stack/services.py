"""The long-running services rezerv places on Ray, and `rezerv deploy` for a cluster head."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from engine.config import Settings


def deploy_services(settings: Settings, timeout_s: float = 60.0) -> dict[str, Any]:
    """Create the shard actors and the saga services on the Ray cluster at `settings.ray_address`
    and start them; returns what each reported. Safe to call again: existing actors are reused."""
    import logging

    import ray

    from actors.factory import service_handle, shard_handle
    from actors.services import ROLES

    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(
            address=settings.ray_address,
            namespace=settings.namespace,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        shards = [shard_handle(settings, i) for i in range(settings.shard_count)]
        services = {role: service_handle(settings, role) for role in ROLES}
        pings = ray.get([s.ping.remote() for s in shards], timeout=timeout_s)
        started = ray.get([services[role].start.remote() for role in ROLES], timeout=timeout_s)
    finally:
        if connected_here:
            ray.shutdown()  # the actors are detached and stay; this process must not stay a Ray driver
    return {"shards": pings, "services": dict(zip(ROLES, started, strict=True))}


def deploy_all(settings: Settings) -> int:
    """Migrations, topics and services against configured (external) servers."""
    missing = [
        name
        for name, value in (
            ("REZERV_DATABASE_URL", settings.database_url),
            ("REZERV_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
            ("REZERV_RAY_ADDRESS", settings.ray_address),
        )
        if not value
    ]
    if missing:
        print(f"rezerv deploy: set {', '.join(missing)}", file=sys.stderr)
        return 2
    from engine.adapters.kafka_topics import ensure_topics
    from engine.adapters.pg_migrations import migrate_url

    asyncio.run(migrate_url(settings.database_url))
    asyncio.run(ensure_topics(settings.kafka_bootstrap, prefix=settings.kafka_topic_prefix))
    deploy_services(settings)
    print("rezerv deploy: done")
    return 0
