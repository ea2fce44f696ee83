"""Group commit: the events of many commands and many entities, appended in one transaction.

Commands are applied in memory as they arrive and their events go into the *open* group. Up to
`max_in_flight` groups are being committed at once (one by default; with two, one copies its
events while the previous one commits, which pays off when flushes are slow, e.g. on cloud
block storage: see BENCHMARKS.md); while every slot is busy, new events gather in the open
group, so the batch grows with the load. Everyone whose events (or whose answer) depends on a
group waits for that group to finish, and learns per stream whether it became durable.

A stream's later events are never durable before, or without, its earlier ones: each append
carries the version it expects the stream to be at, and the store moves a stream's head only
from that version, behind the row lock of the earlier transaction (pg_event_store.py). When a
group fails for a stream, the host drops that entity from memory and `discard`s the stream's
events from every waiting group; a later group already in flight fails for that stream on its
own, because the stream's head is not where it expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from prometheus_client import Histogram

from engine.domain.errors import ConcurrencyConflict, OwnershipLost, RezervError, StoreUnavailable
from engine.ports import AppendResult, EventStore, NewEvent, StreamAppend, Turn

log = logging.getLogger("rezerv.commit")

COMMIT_SECONDS = Histogram(
    "rezerv_group_commit_seconds",
    "Time of one group commit, from handing its events to the store until the store's answer",
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024),
)
COMMIT_EVENTS = Histogram(
    "rezerv_group_commit_events",
    "Events made durable by one group commit (its size)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
)


class CommitGroup:
    __slots__ = ("appends", "done", "ended_ns", "errors", "event_count", "failure", "seq", "started_ns")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.appends: dict[str, StreamAppend] = {}
        self.errors: dict[str, RezervError] = {}
        self.failure: RezervError | None = None
        self.event_count = 0
        self.done = asyncio.Event()
        self.started_ns = 0  # wall clock, for traces: when its commit was sent, and answered
        self.ended_ns = 0

    def error_for(self, stream_id: str) -> RezervError | None:
        """Why this group did not make `stream_id`'s events durable, or None if it did."""
        return self.failure or self.errors.get(stream_id)

    async def wait(self) -> None:
        await self.done.wait()


FailureHandler = Callable[[CommitGroup, dict[str, RezervError]], None]  # the group, why per stream
CommitHandler = Callable[[CommitGroup], None]


class GroupCommitter:
    def __init__(
        self,
        store: EventStore,
        commit_max: int,
        on_failed: FailureHandler,
        on_committed: CommitHandler | None = None,
        max_in_flight: int = 1,
    ) -> None:
        self.store = store
        self.commit_max = commit_max
        self.max_in_flight = max_in_flight
        self.on_failed = on_failed
        self.on_committed = on_committed
        self._seq = 0
        self.queue: deque[CommitGroup] = deque([self._new_group()])
        self.in_flight: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._last_turn: asyncio.Event | None = None  # the head-update turn of the latest group launched
        # Statistics, for the benchmark's "average batch per commit".
        self.commits = 0
        self.committed_events = 0
        self.commit_seconds = 0.0  # time from sending a group to the store until its answer

    def _new_group(self) -> CommitGroup:
        self._seq += 1
        return CommitGroup(self._seq)

    def start(self) -> None:
        if self._task is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self.in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    # ---- called synchronously by the host while applying commands ---------------------------
    def add(
        self,
        stream_id: str,
        expected_version: int,
        token: int,
        events: Sequence[NewEvent],
        inbox: tuple[str, str] | None = None,
    ) -> CommitGroup:
        group = self.queue[-1]
        pending = group.appends.get(stream_id)
        if pending is None and group.event_count >= self.commit_max:
            group = self._new_group()
            self.queue.append(group)
        if pending is None:
            pending = group.appends[stream_id] = StreamAppend(stream_id, expected_version, token, [])
        pending.events.extend(events)
        if inbox is not None:
            pending.inbox.append(inbox)
        group.event_count += len(events)
        self._wakeup.set()
        return group

    def discard(self, stream_id: str, error: RezervError) -> None:
        """Drop a stream's not-yet-committed events from every waiting group."""
        for group in self.queue:
            dropped = group.appends.pop(stream_id, None)
            if dropped is not None:
                group.event_count -= len(dropped.events)
                group.errors[stream_id] = error

    # ---- the commit loop --------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            group = self.queue[0]
            if len(self.queue) == 1 and not group.appends and not group.errors:
                self._wakeup.clear()
                continue
            acquired = bool(group.appends)
            if acquired:
                await self._slots.acquire()  # the open group keeps growing while we wait
            if len(self.queue) == 1:
                self.queue.append(self._new_group())
            self.queue.popleft()
            if not group.appends:  # every stream in it was discarded: its waiters learn why
                if acquired:
                    self._slots.release()
                group.done.set()
                continue
            turn = Turn(self._last_turn)
            self._last_turn = turn.done
            task = loop.create_task(self._commit_and_finish(group, turn))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def _commit_and_finish(self, group: CommitGroup, turn: Turn) -> None:
        assert self._slots is not None
        try:
            await self._commit(group, turn)
        finally:
            turn.finish()  # whatever happened, the next group's head update may go
            group.done.set()
            self._slots.release()

    async def _commit(self, group: CommitGroup, turn: Turn) -> None:
        appends = list(group.appends.values())
        group.started_ns = time.time_ns()
        started = time.perf_counter()
        try:
            result = await self.store.append(appends, turn)
        except asyncio.CancelledError:
            group.failure = StoreUnavailable("the host is stopping; the commit's outcome is unknown")
            self.on_failed(group, {s: group.failure for s in group.appends})
            raise
        except RezervError as exc:
            group.failure = exc if exc.retryable else StoreUnavailable(str(exc))
            result = None
        except Exception as exc:  # a bug or an unexpected driver error: nothing is acknowledged
            log.exception("group commit of %d events failed", group.event_count)
            group.failure = StoreUnavailable(f"append failed: {type(exc).__name__}: {exc}")
            result = None
        elapsed = time.perf_counter() - started
        group.ended_ns = time.time_ns()
        self.commit_seconds += elapsed
        if result is None:
            assert group.failure is not None
            self.on_failed(group, {s: group.failure for s in group.appends})
            return
        failed = _classify(result)
        if failed:
            group.errors.update(failed)
            self.on_failed(group, failed)
        self.commits += 1
        durable = group.event_count - sum(len(group.appends[s].events) for s in failed)
        self.committed_events += durable
        COMMIT_SECONDS.observe(elapsed)
        COMMIT_EVENTS.observe(durable)
        if self.on_committed is not None:
            self.on_committed(group)


def _classify(result: AppendResult) -> dict[str, RezervError]:
    failed: dict[str, RezervError] = {}
    for stream in result.fenced:
        failed[stream] = OwnershipLost(f"{stream} is now owned by a newer host")
    for stream in result.conflicts:
        failed[stream] = ConcurrencyConflict(
            f"{stream} is not at the version this host expected (an earlier commit failed, or another host wrote)"
        )
    return failed
