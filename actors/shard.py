"""A shard: one Ray actor process hosting many entities (events, cars, wallets).

A plain class, made remote in actors/factory.py. Its only hot method is `call`: one batch of
msgpack-encoded commands in, one list of encoded replies out. Callers on the shard's node send
the same batches over its Unix socket instead (`channel`, actors/shard_stream.py). Adapters (asyncpg pool, Redis)
are built on the first call, inside the actor's event loop, by actors/wiring.py. When Ray restarts the actor after
a crash, the new instance starts empty and rebuilds entities from the store on demand, under a
new owner id and new fencing tokens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

from actors import gc_tuning, process_metrics
from actors.shard_metrics import shard_families
from actors.shard_stream import StreamServer, node_id
from actors.wire import decode_batch, encode_replies
from actors.wiring import build_host
from engine.config import Settings
from engine.domain.errors import InvalidCommand
from engine.hosting import EntityHost

log = logging.getLogger("rezerv.shard")


class ShardActor:
    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.settings = Settings.from_env(env)
        self.owner = f"shard-{index}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.host: EntityHost | None = None
        self._lock: asyncio.Lock | None = None
        self._stop = asyncio.Event()
        self._resources: list[Any] = []
        self.timings = {"call_s": 0.0, "decode_s": 0.0, "encode_s": 0.0}
        self.calls_in_progress = 0
        self.stream = StreamServer(self.call)
        logging.basicConfig(level=self.settings.log_level)
        gc_tuning.tune()
        self.metrics_address = process_metrics.start(self.settings)
        process_metrics.register_source("shard", lambda: shard_families(self))

    async def _ensure_host(self) -> EntityHost:
        if self.host is not None:
            return self.host
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.host is None:
                host, self._resources = await build_host(self.settings, self.owner)
                host.start()
                upkeep = host.upkeep.run_housekeeping(self._stop, on_idle=gc_tuning.collect_when_idle)
                host.spawn(upkeep, "housekeeping")
                self.host = host
        return self.host

    async def call(self, payload: bytes, traced: bool = False) -> Any:
        """Apply one batch: encoded replies. `traced` (a batch carrying a traced booking, see
        actors/client.py): (encoded replies, the batch's stages in wall-clock nanoseconds)."""
        host = self.host or await self._ensure_host()
        self.calls_in_progress += 1
        t0 = time.perf_counter()
        try:
            stages: dict[str, int] | None = {"received_ns": time.time_ns()} if traced else None
            try:
                commands = decode_batch(payload)
            except InvalidCommand as err:
                return encode_replies([err])
            t1 = time.perf_counter()
            replies = await host.execute(commands, stages)
            t2 = time.perf_counter()
            out = encode_replies(replies)
            t3 = time.perf_counter()
        finally:
            self.calls_in_progress -= 1
        timings = self.timings
        timings["decode_s"] += t1 - t0
        timings["encode_s"] += t3 - t2
        timings["call_s"] += t3 - t0
        return out if stages is None else (out, stages)

    async def channel(self) -> dict[str, str]:
        """How to reach this shard's socket: its node, address and secret (started on first use)."""
        await self._ensure_host()
        path = await self.stream.start()
        return {"node": node_id(), "path": path, "secret": self.stream.secret}

    async def ping(self) -> dict[str, Any]:
        await self._ensure_host()
        return {"index": self.index, "owner": self.owner, "pid": os.getpid(), "metrics": self.metrics_address}

    async def metrics_target(self) -> dict[str, Any] | None:
        """Where Prometheus scrapes this process (actors/process_metrics.py); None with metrics off."""
        if self.metrics_address is None:
            return None
        return {"address": self.metrics_address, "labels": {"process": f"shard-{self.index}", "role": "shard"}}

    async def stats(self) -> dict[str, Any]:
        host = await self._ensure_host()
        return {
            "index": self.index,
            "owner": self.owner,
            "pid": os.getpid(),
            "entities": len(host.entities),
            "commits": host.committer.commits,
            "committed_events": host.committer.committed_events,
            "commit_s": host.committer.commit_seconds,
            **host.stats,
            **host.timings,
            "failures": dict(host.failures),
            "last_failure": host.last_failure,
            **self.timings,
        }

    async def shutdown(self) -> None:
        """Release leases and connections (used by tests and `rezerv down`; a crash skips it)."""
        self._stop.set()
        await self.stream.close()
        if self.host is not None:
            await self.host.stop()
        for resource in self._resources:
            close = getattr(resource, "aclose", None) or resource.close
            await close()
