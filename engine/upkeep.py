"""An entity host's upkeep: everything it does besides answering commands.

Hold timers (each hold this host applies or loads is armed; a due one that is still HELD gets an
ExpireHold), leases (renewed; an entity another host took over is dropped), passivation (idle
entities whose events are durable leave memory and release their lease), forgetting (bookings and
payments settled longer ago than the idempotency lifetime), and the archive (settled records
leave memory for the archive table). All of it goes through the host's entity table and, where
it changes an entity, through `EntityHost.execute`: the hot path stays the only writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.domain import codec
from engine.domain.aggregate import Aggregate, BookingHost
from engine.domain.archiving import Archiving
from engine.domain.booking import HELD
from engine.domain.commands import Command, ExpireHold, split_stream_id
from engine.domain.errors import OwnershipLost
from engine.domain.results import Done
from engine.ports import ArchivedRecord, RecordArchive

if TYPE_CHECKING:
    from engine.activation import Entity
    from engine.hosting import EntityHost
    from engine.pacing import Pacer

log = logging.getLogger("rezerv.host")


class HostUpkeep:
    """One host's upkeep (see the module docstring); `EntityHost.upkeep`."""

    def __init__(self, host: EntityHost) -> None:
        self.host = host
        # Hold timers: second -> [(stream, hold id)], armed for every hold the host applies or loads.
        self.timers: dict[int, list[tuple[str, str]]] = {}
        self.expired = 0
        self.passivations = 0
        self._forgot_at = 0
        self._archive_cut: str | None = None  # the entity whose archiving the last round's time cut short

    def arm(self, expires_at: int, stream: str, hold_id: str) -> None:
        self.timers.setdefault(expires_at // 1000 + 1, []).append((stream, hold_id))

    async def expire_due(self) -> int:
        """Expire every hold whose time has come; returns how many were expired now.

        A timer may be stale (the hold was confirmed or released since): only holds still HELD in
        memory are sent an ExpireHold. A hold of an entity no longer in memory is left to the saga
        supervisor's sweep (it finds overdue holds in the bookings projection)."""
        now = self.host.clock.now_ms()
        due_seconds = [s for s in self.timers if s * 1000 <= now]
        if not due_seconds:
            return 0
        commands: list[Command] = []
        later: list[tuple[int, str, str]] = []
        for second in sorted(due_seconds):
            for stream, hold_id in self.timers.pop(second):
                entity = self.host.entities.get(stream)
                if entity is None or not isinstance(entity.agg, BookingHost):
                    continue
                booking = entity.agg.bookings.get(hold_id)
                if booking is None or booking.status is not HELD:
                    continue
                if booking.expires_at > now:  # filed under a second that is only partly over
                    later.append((booking.expires_at, stream, hold_id))
                    continue
                kind, entity_id = split_stream_id(stream)
                commands.append(ExpireHold(entity_id, kind, hold_id))
        for expires_at, stream, hold_id in later:
            self.arm(expires_at, stream, hold_id)
        if not commands:
            return 0
        replies = await self.host.execute(commands)
        expired = sum(1 for r in replies if isinstance(r, Done) and r.status == "EXPIRED" and r.changed)
        self.expired += expired
        return expired

    async def expire_forever(self) -> None:
        period = self.host.config.expiry_tick_ms / 1000
        while True:
            await asyncio.sleep(period)
            try:
                await self.expire_due()
            except Exception:
                log.exception("expiring due holds failed; retrying")

    async def renew_leases(self) -> list[str]:
        """Extend this host's leases; drop the entities another host has taken over (not one this
        host has loaded again under a newer token while the renewal was on its way)."""
        leases = [(s, e.token) for s, e in self.host.entities.items()]
        lost = await self.host.fencing.renew(leases, self.host.config.owner, self.host.config.lease_ms)
        renewed = dict(leases)
        for stream in lost:
            entity = self.host.entities.get(stream)
            if entity is not None and entity.token > renewed[stream]:
                continue
            self.host.evict(stream, OwnershipLost(f"{stream} was taken over by another host"))
        return lost

    async def passivate_idle(self) -> list[str]:
        """Drop entities unused for `passivate_after_ms` whose events are all durable."""
        cutoff = self.host.clock.now_ms() - self.host.config.passivate_after_ms
        idle = [
            s
            for s, e in self.host.entities.items()
            if e.last_used < cutoff and e.group is None and not _has_live_holds(e.agg)  # keep their timers
        ]
        leases = []
        for stream in idle:
            entity = self.host.entities.pop(stream)
            self.host.busiest.forget(stream)
            leases.append((stream, entity.token))
        self.passivations += len(idle)
        await self.host.fencing.release(leases, self.host.config.owner)
        return idle

    def forget_settled(self) -> int:
        """Drop from memory what no decision needs any more: bookings that ended, and payments that
        failed or were refunded, longer ago than the idempotency lifetime (a retry of those is
        answered as new after that; see Aggregate.compact). Snapshots compact too, but an entity
        that is not snapshotted (few events, or all of them long ago) would otherwise keep them
        for as long as it stays in memory. Returns how many were dropped."""
        if not self.compacts():
            return 0
        forget_before = self.host.clock.now_ms() - self.host.config.idempotency_ttl_ms
        return sum(entity.agg.compact(forget_before) for entity in list(self.host.entities.values()))

    def compacts(self) -> bool:
        """Whether compaction can find anything: not when the archive takes every settled record
        out of memory first (archive_after_ms within the idempotency lifetime). Then it would only
        scan: for a hot event's 100,000 records in memory, 30-70 ms with the shard's event loop
        stopped, every housekeeping round and every snapshot (BENCHMARKS.md, "the hot shard's
        stalls on a filled stack", 2026-12-05)."""
        cfg = self.host.config
        return self.host.archive is None or not 0 < cfg.archive_after_ms <= cfg.idempotency_ttl_ms

    async def run_housekeeping(
        self, stop: asyncio.Event, period_s: float | None = None, on_idle: Callable[[], object] | None = None
    ) -> None:
        """Renew leases and passivate idle entities; call `on_idle` when no batch came in a whole period."""
        period = period_s if period_s is not None else max(0.5, self.host.config.lease_ms / 3000)
        batches = self.host.stats["batches"]
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            if stop.is_set():
                return
            try:
                await self.renew_leases()
                await self.passivate_idle()
                self.forget_settled()
                await self.archive_settled()
            except Exception:
                log.exception("housekeeping failed; retrying in %.1f s", period)
            if on_idle is not None and self.host.stats["batches"] == batches:
                on_idle()
            batches = self.host.stats["batches"]

    async def archive_settled(self) -> int:
        """Move records settled for `archive_after_ms` out of memory: store them in the archive
        (fenced by the entity's token), then drop each one that is still what was stored. Returns
        how many left memory. A record stored whose event then fails to commit is harmless: the
        failure reloads the entity from the log, and a row is read only for a key not in memory.

        It rests after each write (`EntityHost.pacer`, engine/pacing.py) so that it does not keep
        the shard and its PostgreSQL backend busy for seconds at a time, and chooses no new write
        once the round has run `archive_round_max_ms`: the same housekeeping round renews the
        leases. What is left waits for the next round, which takes the entity cut short last."""
        archive, cfg = self.host.archive, self.host.config
        if archive is None or cfg.archive_after_ms <= 0:
            return 0
        moved = 0
        pacer = self.host.pacer()
        deadline = self.host.clock.now_ms() + cfg.archive_round_max_ms
        for stream in self._archive_order():
            entity = self.host.entities.get(stream)
            if entity is None or not isinstance(entity.agg, Archiving) or entity.token == 0:
                continue
            entity_moved, finished = await self._archive_entity(archive, stream, entity, entity.agg, pacer, deadline)
            moved += entity_moved
            if not finished:
                # Out of time: the rest waits for the next round, which also renews the leases.
                self._archive_cut = stream
                break
        self.host.stats["archived"] += moved
        now = self.host.clock.now_ms()
        if now - self._forgot_at >= cfg.archive_forget_every_ms:
            self._forgot_at = now
            await archive.forget(now)
        return moved

    def _archive_order(self) -> list[str]:
        """The host's entities in table order, turned so that the one the last round's time cut
        short comes last: the ones after it go first, and a hot event with more to archive than a
        round's time does not keep the entities behind it from ever having their turn."""
        streams = list(self.host.entities)
        cut, self._archive_cut = self._archive_cut, None
        if cut in self.host.entities:
            at = streams.index(cut) + 1
            streams = streams[at:] + streams[:at]
        return streams

    async def _archive_entity(
        self, archive: RecordArchive, stream: str, entity: Entity, agg: Archiving, pacer: Pacer, deadline: int
    ) -> tuple[int, bool]:
        """Archive one entity's settled records, a write at a time with a rest after each; returns
        how many left memory and whether it got through them before `deadline` (epoch ms)."""
        cfg = self.host.config
        moved = 0
        for _ in range(cfg.archive_rounds):
            now = self.host.clock.now_ms()
            if now >= deadline:
                return moved, False
            rows = agg.archivable(now - cfg.archive_after_ms, now, cfg.idempotency_ttl_ms, cfg.archive_batch)
            if not rows:
                break
            stored = [ArchivedRecord(key, codec.encode(row), keep) for key, row, keep in rows]
            try:
                await archive.put(stream, entity.token, stored)
            except OwnershipLost:
                break  # another host owns it now; renew_leases drops it here
            if self.host.entities.get(stream) is not entity:
                break
            dropped = agg.archive(rows, self.host.clock.now_ms(), cfg.idempotency_ttl_ms)
            moved += dropped
            if dropped < len(rows):
                break  # some changed meanwhile: they wait for the next round
            await pacer.rest()  # the calls waiting meanwhile run before the next batch is chosen
        return moved, True


def _has_live_holds(agg: Aggregate) -> bool:
    return isinstance(agg, BookingHost) and any(b.status is HELD for b in agg.bookings.values())
