"""Topic creation for the saga's topics; safe to run when they already exist."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

# Topic -> partitions. Keys are booking (saga) ids, so one saga's messages stay in order.
TOPICS: dict[str, int] = {"bookings": 4, "payments": 4}


async def ensure_topics(bootstrap: str, topics: dict[str, int] | None = None, prefix: str = "") -> list[str]:
    """Create missing topics (names with `prefix` in front); returns the names created."""
    wanted = {prefix + name: parts for name, parts in (TOPICS if topics is None else topics).items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, parts, 1) for name, parts in wanted.items() if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
