"""The long-running services rezerv places on Ray, and `rezerv deploy` for a cluster head."""

from __future__ import annotations

import asyncio
import sys

from engine.config import Settings


def deploy_services(settings: Settings) -> None:
    return None


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
    asyncio.run(ensure_topics(settings.kafka_bootstrap))
    deploy_services(settings)
    print("rezerv deploy: done")
    return 0
