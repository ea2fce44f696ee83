"""Activation: bringing an entity into a host's memory, and keeping out one another host owns.

An entity is activated by the first command for it. The host takes a fencing token above the
store's current one (engine/ports.py `Fencing`), claims the stream in the store under that token
(every later append is checked against the claim: the store checks the token, not the client),
then loads the newest snapshot and the events after it. Commands arriving for a stream while it
loads wait for the same load. A batch that cannot create the stream (a read, a refusal for a
made-up id) only probes: nothing is claimed or cached, so it writes nothing. A stream another host
took over is refused (OwnershipLost) until that host's lease could have run out.

What a loaded entity needs from its host (a place in the entity table, its hold timers re-armed,
the listeners told) is the host's `adopt` callback, run once per load before any waiter resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from engine.domain import codec
from engine.domain.aggregate import Aggregate
from engine.domain.entities import aggregate_class, decode_snapshot
from engine.domain.errors import OwnershipLost, StoreUnavailable
from engine.group_commit import CommitGroup
from engine.ports import Clock, EventStore, Fencing


class Entity:
    """An active entity: its aggregate, its fencing token, and its newest uncommitted group."""

    __slots__ = ("agg", "commands", "durable_version", "group", "last_used", "snapshot_at", "snapshot_version", "token")

    def __init__(self, agg: Aggregate, token: int, now: int) -> None:
        self.agg = agg
        self.token = token
        self.group: CommitGroup | None = None
        self.durable_version = agg.version
        self.snapshot_version = agg.version
        self.snapshot_at = now
        self.last_used = now
        self.commands = 0  # commands applied to it since it was activated (the busiest are exported)

    def unfinished_group(self) -> CommitGroup | None:
        """What an answer about this entity waits for: its newest group, unless that one is done."""
        group = self.group
        return group if group is not None and not group.done.is_set() else None


class Activation:
    """One host's activations (see the module docstring); `EntityHost.activation`."""

    def __init__(
        self,
        store: EventStore,
        fencing: Fencing,
        owner: str,
        lease_ms: int,
        clock: Clock,
        adopt: Callable[[str, Entity], None],
        active: Mapping[str, Entity],
    ) -> None:
        """`active`: the host's entity table, where `adopt` puts what is loaded."""
        self.store = store
        self.fencing = fencing
        self.owner = owner
        self.lease_ms = lease_ms
        self.clock = clock
        self.adopt = adopt
        self.active = active
        self.lost: dict[str, int] = {}  # stream -> until when another host owns it
        self._loading: dict[str, asyncio.Future[Entity]] = {}

    def refuse(self, stream_id: str) -> None:
        """Another host took `stream_id` over: do not load it here until its lease could have run out."""
        self.lost[stream_id] = self.clock.now_ms() + self.lease_ms

    async def activate(self, stream_id: str, may_create: bool = True) -> Entity:
        """The entity of `stream_id`, loaded and adopted; for a batch that may not create it and a
        stream that does not exist, an empty, unclaimed one (token 0) that nobody keeps.

        Another caller's load of the stream may have been adopted since this caller found it
        missing (a batch checks, then its activation runs a turn of the loop later; a probe waits
        for the store): this caller then gets that entity. From that look-up to registering a
        load there is no await. Loading it again would claim it under a newer token, and this
        host's commits under the older one would be fenced as if another host had taken it over."""
        if not may_create and stream_id not in self.active:
            probe = await self._probe(stream_id)
            if probe is not None:
                return probe
        adopted = self.active.get(stream_id)  # looked up after the probe's round trip too
        if adopted is not None:
            return adopted
        pending = self._loading.get(stream_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Entity] = asyncio.get_running_loop().create_future()
        self._loading[stream_id] = future
        try:
            entity = await self._load(stream_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: other waiters re-raise it, nobody else must
            raise
        finally:
            del self._loading[stream_id]
        future.set_result(entity)
        return entity

    async def _probe(self, stream_id: str) -> Entity | None:
        cls, entity_id = aggregate_class(stream_id)
        if stream_id in self._loading or await self.store.current_token(stream_id) != 0:
            return None
        return Entity(cls(entity_id), 0, self.clock.now_ms())

    async def _load(self, stream_id: str) -> Entity:
        cls, entity_id = aggregate_class(stream_id)
        until = self.lost.get(stream_id)
        if until is not None:
            if until > self.clock.now_ms():
                raise OwnershipLost(f"{stream_id} is owned by another host")
            del self.lost[stream_id]
        floor = await self.store.current_token(stream_id)
        token = await self.fencing.acquire(stream_id, self.owner, floor, self.lease_ms)
        claim = await self.store.claim(stream_id, token, self.owner)
        agg: Aggregate | None = None
        snapshot = None
        if claim.version:  # a new stream has neither snapshot nor events: two round trips saved
            snapshot = await self.store.load_snapshot(stream_id)
        if snapshot is not None and snapshot.version <= claim.version:
            agg = decode_snapshot(stream_id, snapshot.version, snapshot.state)
        if agg is None:
            agg = cls(entity_id)
        if claim.version > agg.version:
            for recorded in await self.store.load(stream_id, after_version=agg.version):
                agg.apply(codec.decode_record(recorded.data))
        if agg.version != claim.version:
            raise StoreUnavailable(f"{stream_id}: loaded version {agg.version}, claimed {claim.version}")
        entity = Entity(agg, token, self.clock.now_ms())
        if snapshot is not None:
            entity.snapshot_version = snapshot.version
        self.adopt(stream_id, entity)
        return entity
