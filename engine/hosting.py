"""The entity host: many entities in one process, each owning its inventory, none behind a lock.

`execute` takes a batch of commands (one Ray call's worth), activates any entity not in memory
(fencing token, claim, snapshot plus events), then applies every command synchronously: there
is no `await` between checking inventory and changing it, so nothing interleaves. The events go
into the group committer; each answer is released only when the events it depends on are
durable, and becomes a retryable error if they did not become durable.

Three parts, one job each: the host itself is the hot path (`execute`) and what follows a commit
(answers released, snapshots, evictions); bringing an entity into memory (fencing token, claim,
snapshot and events) is its `activation` (engine/activation.py); what it does besides answering
commands (hold timers, leases, passivation, forgetting, the archive) is its `upkeep`
(engine/upkeep.py). Committing is engine/group_commit.py.

Nothing here knows about Ray: actors/shard.py wraps a host in a Ray actor, and the unit tests
run a host on in-memory fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.activation import Activation, Entity
from engine.busiest import BusiestKeys
from engine.domain import codec
from engine.domain.aggregate import Aggregate, BookingHost, RunHandler
from engine.domain.archiving import Archiving
from engine.domain.commands import (
    Command,
    FromMessage,
    HoldCar,
    HoldTickets,
    RestoreRecord,
    split_stream_id,
)
from engine.domain.entities import aggregate_class, encode_snapshot
from engine.domain.errors import (
    ArchiveLookupNeeded,
    DomainError,
    InvalidCommand,
    OwnershipLost,
    RezervError,
    StoreUnavailable,
    TransientError,
)
from engine.domain.events import CarHeld, TicketsHeld
from engine.domain.results import Reply
from engine.domain.snapshot_pieces import SnapshotInPieces, in_pieces
from engine.group_commit import CommitGroup, GroupCommitter
from engine.pacing import Pacer
from engine.ports import Clock, EventStore, Fencing, NewEvent, RecordArchive, Snapshot, SystemClock
from engine.upkeep import HostUpkeep

log = logging.getLogger("rezerv.host")

EventListener = Callable[[str, Aggregate, list[Any]], None]


@dataclass(frozen=True)
class HostConfig:
    owner: str
    commit_max: int = 4096
    commits_in_flight: int = 1
    apply_slice: int = 256  # commands applied between two yields to the event loop (see execute)
    expiry_tick_ms: int = 250  # how often due holds are expired
    snapshot_every: int = 2000
    snapshot_min_interval_ms: int = 5000
    # A snapshot of more bookings than this is encoded this many at a time, the event loop free in
    # between (engine/domain/snapshot_pieces.py): about 5 ms a piece on this machine under load.
    snapshot_piece: int = 2000
    passivate_after_ms: int = 300_000
    idempotency_ttl_ms: int = 86_400_000
    lease_ms: int = 30_000
    archive_after_ms: int = 0  # settled this long, a record moves to the archive; 0: it stays in memory
    # Records per archive write. The write holds back the stream's appends while it commits (it
    # locks the stream's row last: engine/adapters/pg_event_store.py), and choosing and then
    # dropping a batch stops the event loop: 44 ms for 5,000 records of a 100,000-booking event on
    # this machine out of load, about a fifth of that for 1,000.
    archive_batch: int = 1_000
    archive_rounds: int = 50  # archive writes per entity per housekeeping round, at most
    # A round of the archive chooses no new write after this long: it runs in the housekeeping
    # round that also renews the leases (engine/upkeep.py), and resting between its writes makes
    # it slower than it needs to be (background_share).
    archive_round_max_ms: int = 5_000
    archive_forget_every_ms: int = 600_000  # how often archived rows past their keep-until are deleted
    # The archive's writes and a big snapshot's pieces run at most this share of the time, resting
    # between steps (engine/pacing.py); 1: no rest, only a pass of the event loop between steps.
    background_share: float = 0.5
    busiest: int = 20  # how many of the busiest entities the host keeps track of (its metrics)


class EntityHost:
    def __init__(
        self,
        store: EventStore,
        fencing: Fencing,
        config: HostConfig,
        clock: Clock | None = None,
        archive: RecordArchive | None = None,
        counting: bool = True,
    ) -> None:
        """`counting`: count holds granted and refused and the busiest entities for the metrics
        (False with REZERV_METRICS=0: the hot path then does none of it)."""
        self.store = store
        self.archive = archive
        self.fencing = fencing
        self.config = config
        self.clock = clock or SystemClock()
        self.entities: dict[str, Entity] = {}
        self.activation = Activation(
            store, fencing, config.owner, config.lease_ms, self.clock, self._adopt, self.entities
        )
        self._background: set[asyncio.Task[Any]] = set()
        self.committer = GroupCommitter(
            store, config.commit_max, self._on_failed, self._on_committed, config.commits_in_flight
        )
        self.listeners: list[EventListener] = []
        self.stats = {
            "batches": 0,
            "commands": 0,
            "activations": 0,
            "evictions": 0,
            "snapshots": 0,
            "archived": 0,
            "archive_lookups": 0,
            "restored": 0,
        }
        self.timings = {"apply_s": 0.0, "durability_wait_s": 0.0}
        self.failures: Counter[str] = Counter()  # streams dropped after a failed commit, by error code
        self.last_failure = ""
        # For the metrics (read when scraped, written as plain counts: a few per run of commands).
        self.holds_granted: Counter[str] = Counter()  # new holds, by entity kind
        self.holds_refused: Counter[tuple[str, str]] = Counter()  # (entity kind, error code)
        self.busiest = BusiestKeys(config.busiest)
        self.counting = counting
        self.upkeep = HostUpkeep(self)  # hold timers, leases, passivation, forgetting, the archive

    def start(self) -> None:
        self.committer.start()
        self.spawn(self.upkeep.expire_forever(), "hold expiry")

    async def stop(self) -> None:
        await self.committer.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        leases = [(s, e.token) for s, e in self.entities.items()]
        with contextlib.suppress(Exception):
            await self.fencing.release(leases, self.config.owner)

    # ---- the hot path -------------------------------------------------------------------------
    async def execute(self, commands: Sequence[Command], timings: dict[str, int] | None = None) -> list[Reply]:
        """Apply a batch; the replies in command order, each released once its events are durable.

        `timings` (tracing, rarely given): filled with wall-clock nanoseconds of the batch's
        stages: applied_ns, durable_ns, and the last group commit it waited for (commit_started_ns,
        commit_ended_ns, commit_events)."""
        self.stats["batches"] += 1
        self.stats["commands"] += len(commands)
        entities = self.entities
        failures: dict[str, RezervError] = {}
        unclaimed: dict[str, Entity] = {}  # streams that do not exist and that this batch cannot create
        missing: dict[str, bool] = {}  # stream -> may this batch create it?
        streams = [c.stream_id for c in commands]
        for c, stream in zip(commands, streams, strict=True):
            if stream not in entities:
                missing[stream] = missing.get(stream, False) or _creates(c)
        if missing:
            wanted = list(missing)
            outcomes = await asyncio.gather(
                *(self.activation.activate(s, missing[s]) for s in wanted), return_exceptions=True
            )
            for stream, outcome in zip(wanted, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failures[stream] = _as_rezerv_error(outcome)
                elif outcome.token == 0:
                    unclaimed[stream] = outcome

        # Each command is checked and applied with nothing in between (no await inside a command).
        # Between slices of `apply_slice` commands the loop is let go for a moment, so the group
        # commit's round trips are not stuck behind a very long run of applying; that is also why
        # the entity is looked up again after every yield (it may have been dropped meanwhile).
        # The default slice is one Ray call's batch: yielding every 64 commands measured slower
        # (the yields cost more than the round trips gained; BENCHMARKS.md). A run of commands of
        # one type for one entity goes to the aggregate's run handler in one call, if it has one
        # (a hot event's holds): the same answers and events, without the per-command overhead.
        started = time.perf_counter()
        now = self.clock.now_ms()
        results: list[Reply] = []
        waits: list[CommitGroup | None] = []  # per command: the group its answer depends on
        slice_size = self.config.apply_slice
        runs_allowed = not self.listeners  # listeners are handed event objects, which runs do not build
        count = len(commands)
        index = 0
        next_yield = slice_size
        while index < count:
            if index >= next_yield:
                await asyncio.sleep(0)
                now = self.clock.now_ms()
                next_yield = index + slice_size
            stream = streams[index]
            command = commands[index]
            entity = entities.get(stream) or unclaimed.get(stream)
            if entity is None:
                results.append(failures.get(stream) or StoreUnavailable(f"{stream} could not be activated"))
                waits.append(None)
                index += 1
                continue
            kind = type(command)
            runner = entity.agg.run_handlers.get(kind) if runs_allowed and entity.token else None
            if runner is not None:
                end = index + 1
                limit = min(count, next_yield)
                while end < limit and streams[end] == stream and type(commands[end]) is kind:
                    end += 1
                self._apply_run(stream, entity, runner, commands[index:end], now, results, waits)
                index = end
                continue
            result, wait = self._apply_one(stream, entity, command, now, unclaimed)
            results.append(result)
            waits.append(wait)
            index += 1

        if self.archive is not None:  # a command named a record that may be in the archive
            lookups = [i for i, r in enumerate(results) if type(r) is ArchiveLookupNeeded]
            if lookups:
                await self._look_up_archived(commands, streams, lookups, results, waits, unclaimed)

        # Nothing is answered before what it depends on is durable.
        applied = time.perf_counter()
        self.timings["apply_s"] += applied - started
        if timings is not None:
            timings["applied_ns"] = time.time_ns()
        groups = {g.seq: g for g in waits if g is not None}
        for group in groups.values():
            await group.wait()
        self.timings["durability_wait_s"] += time.perf_counter() - applied
        if timings is not None:
            _commit_timings(timings, groups)
        if any(g.failure is not None or g.errors for g in groups.values()):
            for i, waited in enumerate(waits):
                error = waited.error_for(streams[i]) if waited is not None else None
                if error is not None:
                    results[i] = error
        return results

    def _apply_one(
        self, stream: str, entity: Entity, command: Command, now: int, unclaimed: dict[str, Entity]
    ) -> tuple[Reply, CommitGroup | None]:
        """Check and apply one command; its answer and the group that answer waits for."""
        agg = entity.agg
        version_before = agg.version
        inbox = None
        target = command
        if type(command) is FromMessage:
            inbox = (command.consumer, command.message_id)
            target = command.command
        try:
            result: Reply = agg.handle(target, now)
        except (DomainError, ArchiveLookupNeeded) as err:  # nothing changed (a lookup: `execute` runs it again)
            err.__traceback__ = None  # its frames would hold this frame: a cycle per refusal
            result = err
        except Exception as exc:  # a bug in a handler: refuse the command, keep the entity honest
            log.exception("command %r failed", command)
            self.evict(stream, StoreUnavailable("internal error"))
            return InvalidCommand(f"internal error: {type(exc).__name__}"), None
        entity.last_used = now
        if self.counting:
            entity.commands += 1
            self.busiest.note(stream, entity.commands)
            if type(target) in _HOLD_COMMANDS:
                if isinstance(result, DomainError):
                    self.holds_refused[(target.kind, result.code)] += 1
                elif agg.pending:
                    self.holds_granted[target.kind] += 1
        if agg.pending:
            events = agg.take_pending()
            if entity.token == 0:  # only a creator may write to a stream that does not exist
                log.error("%r changed unclaimed stream %s; refused", command, stream)
                unclaimed.pop(stream, None)
                return InvalidCommand("internal error: write to an unclaimed stream"), None
            encode = codec.encode_named_record
            new_events = [NewEvent(*encode(e)) for e in events]
            entity.group = self.committer.add(stream, version_before, entity.token, new_events, inbox)
            for event in events:
                if type(event) in _HOLD_EVENTS:  # a new hold: arm its expiry timer
                    self.upkeep.arm(event.expires_at, stream, event.hold_id)  # type: ignore[attr-defined]
            for listener in self.listeners:
                listener(stream, agg, events)
        return result, entity.unfinished_group()

    def _apply_run(
        self,
        stream: str,
        entity: Entity,
        runner: RunHandler,
        commands: Sequence[Command],
        now: int,
        results: list[Reply],
        waits: list[CommitGroup | None],
    ) -> None:
        """Apply consecutive commands of one type for one claimed entity through its run handler."""
        agg = entity.agg
        version_before = agg.version
        try:
            answers, events, held = runner(agg, commands, now)
        except Exception as exc:  # a bug: part of the run may be applied in memory, none of it is kept
            log.exception("a run of %d %s failed", len(commands), type(commands[0]).__name__)
            self.evict(stream, StoreUnavailable("internal error"))
            results.extend([InvalidCommand(f"internal error: {type(exc).__name__}")] * len(commands))
            waits.extend([None] * len(commands))
            return
        entity.last_used = now
        if self.counting:
            entity.commands += len(commands)
            self.busiest.note(stream, entity.commands)
            if type(commands[0]) in _HOLD_COMMANDS:
                kind = commands[0].kind
                self.holds_granted[kind] += len(held)
                if len(held) < len(commands):  # refusals (or retries answered again): count the refusals
                    for answer in answers:
                        if isinstance(answer, DomainError):
                            self.holds_refused[(kind, answer.code)] += 1
        if events:
            new_events = [NewEvent(name, data) for name, data in events]
            entity.group = self.committer.add(stream, version_before, entity.token, new_events)
            for hold_id, expires_at in held:
                self.upkeep.arm(expires_at, stream, hold_id)
        results.extend(answers)
        waits.extend([entity.unfinished_group()] * len(commands))

    # ---- the archive ---------------------------------------------------------------------------
    async def _look_up_archived(
        self,
        commands: Sequence[Command],
        streams: list[str],
        lookups: list[int],
        results: list[Reply],
        waits: list[CommitGroup | None],
        unclaimed: dict[str, Entity],
    ) -> None:
        """Read the records that commands `lookups` named from the archive, put back those found
        (a RestoreRecord each), mark the others as not archived, and run those commands again.
        If the archive cannot be read, their answers stay ArchiveLookupNeeded: retryable."""
        assert self.archive is not None
        archive = self.archive
        wanted: dict[str, set[str]] = {}
        for i in lookups:
            lookup = results[i]
            assert isinstance(lookup, ArchiveLookupNeeded)
            wanted.setdefault(streams[i], set()).add(lookup.key)
        names = list(wanted)
        try:
            found = await asyncio.gather(*(archive.get(s, sorted(wanted[s])) for s in names))
        except Exception as exc:
            log.warning("reading the archive failed (%s: %s); the commands are answered as retryable",
                        type(exc).__name__, exc)  # fmt: skip
            return
        self.stats["archive_lookups"] += len(lookups)
        now = self.clock.now_ms()
        touched: list[Archiving] = []
        for stream, rows in zip(names, found, strict=True):
            entity = self.entities.get(stream)
            if entity is None or not isinstance(entity.agg, Archiving):
                continue
            touched.append(entity.agg)
            kind, entity_id = split_stream_id(stream)
            for key in sorted(wanted[stream]):
                data = rows.get(key)
                if data is None:
                    entity.agg.resolved.add(key)
                    continue
                restore = RestoreRecord(entity_id, kind, key, tuple(codec.decode(data)))
                result, _ = self._apply_one(stream, entity, restore, now, unclaimed)
                if getattr(result, "changed", False):
                    self.stats["restored"] += 1
        for i in lookups:
            entity = self.entities.get(streams[i])
            if entity is not None:
                if self.counting:
                    entity.commands -= 1  # counted when first answered ArchiveLookupNeeded; counted again now
                results[i], waits[i] = self._apply_one(streams[i], entity, commands[i], now, unclaimed)
        for agg in touched:
            agg.resolved.clear()

    # ---- activation (engine/activation.py loads; the host adopts what it loaded) --------------
    def _adopt(self, stream_id: str, entity: Entity) -> None:
        """Take a freshly loaded entity into memory: its hold timers re-armed from its state (they
        survive restarts), the listeners told, the activation counted."""
        self.entities[stream_id] = entity
        agg = entity.agg
        if isinstance(agg, BookingHost):
            for hold_id, expires_at in agg.active_holds():
                self.upkeep.arm(expires_at, stream_id, hold_id)
        self.stats["activations"] += 1
        for listener in self.listeners:
            listener(stream_id, agg, [])

    # ---- after a commit -----------------------------------------------------------------------
    def _on_failed(self, group: CommitGroup, failed: dict[str, RezervError]) -> None:
        """Drop every entity whose events did not become durable, before anything else runs.

        An entity this host has loaded again since (a newer token: it was evicted while the
        group was in flight) is not the one that failed: it stays, and a fenced commit under the
        older token is not another host's takeover."""
        for stream, error in failed.items():
            self.failures[error.code] += 1
            self.last_failure = f"{stream}: {error.message}"
            entity, append = self.entities.get(stream), group.appends.get(stream)
            if entity is not None and append is not None and entity.token > append.token:
                continue
            self.evict(stream, error)

    def evict(self, stream: str, error: RezervError) -> None:
        """Drop an entity from memory and fail what waits for its commit with `error`. One that
        another host took over (OwnershipLost) is not activated here again until that host's
        lease could have run out."""
        if isinstance(error, OwnershipLost):
            self.activation.refuse(stream)
        if self.entities.pop(stream, None) is not None:
            self.stats["evictions"] += 1
            self.busiest.forget(stream)
        self.committer.discard(stream, error)

    def _on_committed(self, group: CommitGroup) -> None:
        now = self.clock.now_ms()
        cfg = self.config
        for stream, append in group.appends.items():
            if stream in group.errors:
                continue
            entity = self.entities.get(stream)
            if entity is None or entity.token != append.token:
                continue
            entity.durable_version = append.expected_version + len(append.events)
            if entity.group is group:
                entity.group = None
                since = entity.durable_version - entity.snapshot_version
                due = cfg.snapshot_every and since >= max(cfg.snapshot_every, _bookings(entity.agg))
                if due and now - entity.snapshot_at >= cfg.snapshot_min_interval_ms:
                    self._snapshot(stream, entity, now)

    def _snapshot(self, stream: str, entity: Entity, now: int) -> None:
        """Take it now (every event of this entity is durable at this instant), save in the
        background; a big one is also encoded in the background, in pieces."""
        agg = entity.agg
        piece = self.config.snapshot_piece
        big = agg if in_pieces(agg, piece) else None
        if big is not None and big.pre_images is not None:
            return  # the last one is still being encoded; a later commit tries again
        if self.upkeep.compacts():
            agg.compact(now - self.config.idempotency_ttl_ms)
        entity.snapshot_at = now
        self.stats["snapshots"] += 1
        if big is not None:
            pieces = SnapshotInPieces(big)
            entity.snapshot_version = pieces.version
            self.spawn(self._save_in_pieces(stream, pieces, piece), f"snapshot {stream}")
        else:
            snapshot = Snapshot(stream, agg.version, encode_snapshot(agg))
            entity.snapshot_version = snapshot.version
            self.spawn(self.store.save_snapshot(snapshot), f"snapshot {stream}")

    async def _save_in_pieces(self, stream: str, pieces: SnapshotInPieces, piece: int) -> None:
        """Encode `piece` bookings at a time with the loop free in between, then hand the pieces to
        the store unjoined: it sends them one by one, so no step of the loop is the whole snapshot."""
        pacer = self.pacer()
        try:
            done = False
            while not done:
                done = pieces.encode_next(piece)
                await pacer.rest()  # the calls waiting meanwhile run here, after each piece
            parts = pieces.finish()
        finally:
            pieces.release()
        await self.store.save_snapshot_in_parts(stream, pieces.version, parts)

    # ---- background work ----------------------------------------------------------------------
    def pacer(self) -> Pacer:
        """What a piece of background work rests by between its steps (engine/pacing.py); one each."""
        return Pacer(self.config.background_share)

    def spawn(self, work: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background work failed: %s", what)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


_HOLD_EVENTS = frozenset({TicketsHeld, CarHeld})
_HOLD_COMMANDS = frozenset({HoldTickets, HoldCar})


def _commit_timings(timings: dict[str, int], groups: dict[int, CommitGroup]) -> None:
    """The stages a traced batch went through: durable now, after the last group it waited for."""
    timings["durable_ns"] = time.time_ns()
    if groups:
        last = groups[max(groups)]
        timings.update(commit_started_ns=last.started_ns, commit_ended_ns=last.ended_ns, commit_events=last.event_count)


def _creates(command: Command) -> bool:
    if type(command) is FromMessage:
        command = command.command
    try:
        cls, _ = aggregate_class(command.stream_id)
    except InvalidCommand:
        return False  # activation reports the bad stream id to this command's caller
    return type(command) in cls.CREATORS


def _bookings(agg: Aggregate) -> int:
    """Snapshot cost grows with the state; wait for at least that many new events (amortized O(1))."""
    bookings = getattr(agg, "bookings", None)
    return len(bookings) if bookings is not None else 0


def _as_rezerv_error(exc: BaseException) -> RezervError:
    if isinstance(exc, RezervError):
        return exc
    return TransientError(f"activation failed: {type(exc).__name__}: {exc}")
