"""The saga's topics on the broker: creating them (safe to run when they exist), and probing
that the broker answers (for `rezerv up` and the API's readiness check)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

# Topic -> partitions. Keys are hold ids, so one booking's messages stay in order. ("payments",
# which carried refunds, is gone since 2026-12-04: its one consumer reads the log; engine/outbox.py.)
TOPICS: dict[str, int] = {"bookings": 4}


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


class BrokerProbe:
    """Lists the broker's topics over one admin connection, opened on the first check and kept."""

    def __init__(self, bootstrap: str, request_timeout_ms: int = 2000) -> None:
        self.bootstrap = bootstrap
        self.request_timeout_ms = request_timeout_ms
        self._admin: AIOKafkaAdminClient | None = None

    async def check(self) -> None:
        """Raise unless the broker answers a metadata request."""
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=self.request_timeout_ms)
            await admin.start()
            self._admin = admin
        await self._admin.list_topics()

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


async def ping(bootstrap: str, timeout_s: float = 8.0) -> None:
    """Raise unless the broker at `bootstrap` answers within `timeout_s`."""
    probe = BrokerProbe(bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(probe.check(), timeout_s)
    finally:
        await probe.close()


async def list_topic_names(bootstrap: str) -> list[str]:
    """Every topic on the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Collection[str]) -> None:
    """Delete these topics (a missing one is not an error)."""
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        with contextlib.suppress(UnknownTopicOrPartitionError):
            await admin.delete_topics(list(names))
    finally:
        await admin.close()
