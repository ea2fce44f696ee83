"""Consuming the outbox's topics (aiokafka) for the saga: act on each message, then commit its offset.

Offsets are committed only after the effect is durable: a batch is handed to the handler, and its
offsets are committed only when the handler has returned. A crash, a cancellation or a failed
commit therefore re-delivers messages, never skips them, and duplicates are removed by message id:
before each handler call the consumer asks `processed` which ids were already acted on (the
handler records its effects together with those ids, atomically), and drops those and the
repeats inside the batch (the pure `select_fresh`, apart from the I/O as in aiokafka's
transactional example). A failing handler gets the same batch again with a backoff (0.2 s
doubling to 5 s) until it succeeds or the consumer stops, logged once per failure streak.

The broker is not trusted to keep anything (the embedded tansu broker keeps topics, messages and
committed offsets in memory only, so its restart loses all of them):
- A broker restart loses topics, messages and committed offsets. aiokafka notices it lazily and
  may first fetch from the new, empty-then-refilled topic at its old positions, which would skip
  the new topic's first messages. So, before a batch is handed over, the consumer commits the
  batch's start offsets (already acted on, so this commits nothing new): the commit fails on a
  broker that no longer knows this member, and the batch is dropped until the group is joined
  again from the committed (or earliest) offsets. A batch is also dropped, and never committed,
  when the assignment changed since it was fetched (a rebalance listener counts changes) or the
  group generation was reset: a commit would then carry the new generation (or none, which a
  broker that lost the group accepts) with positions of the old topic.
- A batch's end offsets go out with the next batch's fence (one commit per batch, not two: the
  broker's CPU is per request, BENCHMARKS.md section 3), or on the first empty fetch after it, or
  when the consumer stops; only under the membership that fetched the batch. Until then a crash
  re-delivers that batch, which `processed` drops.
- After every assignment change the topic is ensured (kafka_topics.ensure_topics); if it had to
  be created, the broker lost its state, and the consumer is replaced by a fresh one (fresh
  metadata, fresh group membership, offsets from "earliest").
- Any other consumer error (getmany raising, a commit timing out or failing for another reason
  than a rebalance, the broker unreachable at start) closes the consumer and starts a new one
  after a backoff, logged once per outage.
The topic is created before subscribing, because a broker that auto-creates topics (tansu does,
on a metadata request) would create it with its default partition count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter, Gauge, Histogram

from engine import tracing
from engine.adapters.kafka_topics import TOPICS, ensure_topics
from engine.cancellation import as_failure
from engine.domain import codec
from engine.following import Backoff
from engine.outbox import OutboxMessage, split_generation

log = logging.getLogger("rezerv.consumer")

MESSAGES = Counter(
    "rezerv_consumer_messages_total",
    "Messages a saga consumer finished with: handled (the handler returned), duplicate (repeated in its batch "
    "or already processed), skipped (a type the consumer does not act on), undecodable (skipped)",
    ["consumer", "outcome"],
)
HANDLER_FAILURES = Counter(
    "rezerv_consumer_handler_failures_total",
    "Failed attempts to act on a batch (the handler or the processed-ids lookup raised); the batch is retried",
    ["consumer"],
)

LAG = Gauge(
    "rezerv_consumer_lag_messages",
    "Messages on a partition after the last batch a consumer fetched (high watermark minus its next offset)",
    ["consumer", "topic", "partition"],
)
BATCH_MESSAGES = Histogram(
    "rezerv_consumer_batch_messages",
    "Records per batch a consumer fetched (skipped types included)",
    ["consumer"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384),
)
BATCH_SECONDS = Histogram(
    "rezerv_consumer_batch_seconds",
    "Time to act on one fetched batch: the processed-ids lookup and the handler, retries included",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

Handler = Callable[[list[OutboxMessage]], Awaitable[None]]
Processed = Callable[[list[str]], Awaitable[set[str]]]


# --- pure: decoding, ordering, deduplication -------------------------------------------------


@dataclass(frozen=True)
class Undecodable:
    topic: str
    partition: int
    offset: int
    reason: str


@dataclass(frozen=True)
class Batch:
    """One `getmany` result, decoded: what to act on and which offsets it spans."""

    messages: list[OutboxMessage]  # decodable values, by partition then offset; may repeat ids
    undecodable: list[Undecodable]
    starts: dict[TopicPartition, int]  # per partition, the offset of the batch's first record
    ends: dict[TopicPartition, int]  # per partition, the offset after its last record (what to commit)
    skipped: int = 0  # records whose "type" header names a type the consumer does not act on
    delivered: list[tracing.Delivered] = field(default_factory=list)  # sampled messages (tracing on only)

    @property
    def message_ids(self) -> list[str]:
        return list(dict.fromkeys(m.message_id for m in self.messages))


def decode_message(value: bytes | None) -> OutboxMessage | str:
    """The OutboxMessage in a record's value, or why there is none."""
    if value is None:
        return "no value"
    try:
        decoded = codec.decode(value)
    except codec.CodecError as exc:
        return str(exc)
    if not isinstance(decoded, OutboxMessage):
        return f"not an OutboxMessage: {type(decoded).__name__}"
    return decoded


def record_type(record: Any) -> str | None:
    """The event type a record's "type" header names (engine/outbox.py sets it), if any."""
    for name, value in record.headers or ():
        if name == "type":
            return bytes(value).decode("utf-8", "replace")
    return None


def decode_batch(records: Mapping[TopicPartition, Sequence[Any]], event_types: frozenset[str] | None = None) -> Batch:
    """Decode a `getmany` result (records with topic, partition, offset, headers and value).

    Messages come out by partition, then offset: the handler may rely on one key's messages
    (one key lives on one partition) being in order. A record that does not decode is set aside,
    so it never holds up its partition: its offset is committed with the rest of the batch. A
    record whose "type" header is not one of `event_types` (when given) is skipped undecoded."""
    messages: list[OutboxMessage] = []
    skipped = 0
    undecodable: list[Undecodable] = []
    delivered: list[tracing.Delivered] = []
    traced = tracing.ENABLED
    starts: dict[TopicPartition, int] = {}
    ends: dict[TopicPartition, int] = {}
    for tp in sorted(records, key=lambda tp: (tp.topic, tp.partition)):
        in_order = sorted(records[tp], key=lambda record: int(record.offset))
        if not in_order:
            continue
        starts[tp] = int(in_order[0].offset)
        ends[tp] = int(in_order[-1].offset) + 1
        for record in in_order:
            if event_types is not None:
                kind = record_type(record)
                if kind is not None and kind not in event_types:
                    skipped += 1
                    continue
            decoded = decode_message(record.value)
            if isinstance(decoded, OutboxMessage):
                messages.append(decoded)
                if traced and len(record.headers or ()) > 2:  # only a sampled message has a third header
                    parent = tracing.header_traceparent(record.headers)
                    if parent is not None:
                        delivered.append(tracing.Delivered(parent, decoded.event_type, int(record.timestamp)))
            else:
                undecodable.append(Undecodable(tp.topic, tp.partition, int(record.offset), decoded))
    return Batch(messages, undecodable, starts, ends, skipped, delivered)


def select_fresh(messages: Iterable[OutboxMessage], already_processed: Collection[str]) -> list[OutboxMessage]:
    """The messages to act on: each id once (its first occurrence), none already processed, order kept.

    Repeats happen by design: the relay publishes at least once, and a batch whose offsets were
    not committed (crash, rebalance, broker restart) is consumed again."""
    seen = set(already_processed)
    fresh: list[OutboxMessage] = []
    for message in messages:
        if message.message_id not in seen:
            seen.add(message.message_id)
            fresh.append(message)
    return fresh


def wanted_messages(messages: list[OutboxMessage], event_types: frozenset[str] | None) -> list[OutboxMessage]:
    """The messages of the types a handler acts on (all when `event_types` is None), order kept."""
    if event_types is None:
        return messages
    return [m for m in messages if m.event_type in event_types]


def fence_offsets(
    pending: tuple[Hashable, Mapping[TopicPartition, int]] | None,
    membership: Hashable,
    starts: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """What a batch's fence commits: its start offsets, and the end offsets of the batch before it
    (`pending`, acted on and not yet committed) if that batch was fetched under the same
    `membership`. A partition in both takes the new start (the same offset when reading on; the
    fence's own after a seek back). Ends fetched under another membership are dropped: committed
    under a new generation they could land in a topic the broker made anew."""
    if pending is None or pending[0] != membership:
        return dict(starts)
    return {**pending[1], **starts}


def saga_topic_partitions(topic: str) -> int:
    """The partition count of a saga topic (kafka_topics.TOPICS), also under a deployment prefix
    (KafkaPublisher's `topic_prefix` puts it in front of the name), so the consumer creates a
    missing topic exactly as the relay would."""
    for name, partitions in TOPICS.items():
        if topic.endswith(name):
            return partitions
    raise ValueError(f"topic {topic!r} is none of {sorted(TOPICS)} (with or without a prefix): pass `partitions`")


# --- I/O: the consume loop -------------------------------------------------------------------


class _RestartConsumer(Exception):
    """The consumer's view of the broker can no longer be trusted; start over with a new one."""


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Counts assignment changes, so a batch is acted on and committed only under the assignment
    that fetched it (aiokafka calls these around every rebalance, before the generation changes)."""

    def __init__(self, on_assigned: Callable[[Collection[TopicPartition]], None] | None = None) -> None:
        self.epoch = 0
        self.on_assigned = on_assigned  # called with new partitions before anything is fetched from them

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.epoch += 1

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.epoch += 1
        if self.on_assigned is not None:
            self.on_assigned(assigned)


def _generation(consumer: AIOKafkaConsumer) -> int | None:
    """The group generation aiokafka's coordinator is in; -1 once the broker has forgotten this member.

    Read from a private attribute (aiokafka is pinned below 0.15) because nothing public tells:
    in the moment between "member unknown" and the rejoin (which is what the rebalance listener
    sees), a commit goes out with generation -1, and a broker that lost the group (a restarted
    tansu, and Kafka too) accepts that as a commit without a group, so offsets of the old topic
    would land in the new one. None if the attribute is gone; the listener's count still guards."""
    generation = getattr(getattr(consumer, "_coordinator", None), "generation", None)
    return generation if isinstance(generation, int) else None


def _at_end(consumer: AIOKafkaConsumer) -> bool:
    """Every assigned partition's next offset is its high watermark (both known, no await). The
    position is read where aiokafka's own `position()` reads it (aiokafka is pinned below 0.15);
    if that is gone, this says False and a generation is simply never retired."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    state = getattr(consumer, "_subscription", None)
    assignment = getattr(getattr(state, "subscription", None), "assignment", None)
    for tp in assigned:
        highwater = consumer.highwater(tp)
        tp_state = assignment.state_value(tp) if assignment is not None else None
        if highwater is None or tp_state is None or not getattr(tp_state, "has_valid_position", False):
            return False
        if tp_state.position < highwater:
            return False
    return True


def beyond_the_end(positions: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> list[TopicPartition]:
    """Partitions whose next offset to read lies past the end of their log (which only a broker
    that lost its data produces: offsets never move back on a healthy one)."""
    return [tp for tp, position in positions.items() if tp in ends and position > ends[tp]]


@dataclass(frozen=True)
class _Membership:
    """The assignment (and group generation) a batch was fetched under."""

    epoch: int
    generation: int | None

    def is_current(self, assignments: _Assignments, consumer: AIOKafkaConsumer) -> bool:
        if assignments.epoch != self.epoch:
            return False
        if self.generation is None:
            return True
        return self.generation >= 0 and _generation(consumer) == self.generation


@dataclass
class _Streak:
    """A run of failures, logged when it starts (and per new kind of error), not per retry."""

    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    seen: set[type[BaseException]] = field(default_factory=set)

    def is_new(self, exc: BaseException) -> bool:
        self.attempts += 1
        if type(exc) in self.seen:
            return False
        self.seen.add(type(exc))
        return True


def fetch_pause_s(min_interval_s: float, since_last_fetch_s: float, last_count: int, batch_max: int) -> float:
    """How long a consumer waits before its next fetch: nothing after an empty fetch (the fetch
    itself waits for data) or a full one (it is behind), else what is left of `min_interval_s`
    since the last fetch began."""
    if last_count == 0 or last_count >= batch_max:
        return 0.0
    return max(0.0, min_interval_s - since_last_fetch_s)


FETCH_WAIT_MIN_MS = 50
FETCH_WAIT_MAX_MS = 500  # aiokafka's own default


def fetch_wait_ms(min_interval_s: float) -> int:
    """How long the broker may hold a fetch open: the consumer's own pace, from 50 to 500 ms.

    A consumer that takes a batch at most every `min_interval_s` gains nothing from fetches that
    come back sooner, and every fetch is a request the broker pays for, data or not: tansu holds an
    empty fetch for the whole wait, so an idle consumer costs it 1000 / wait requests a second.
    With the saga paced at 200 ms, 200 ms instead of 50 took the broker from 8-12% of a core to
    6-7% at 16 and 64 users, hold to confirmed unchanged (BENCHMARKS.md section 2). A consumer
    not paced (REZERV_SAGA_BATCH_INTERVAL_MS=0) keeps 50 ms: Kafka answers a fetch as soon as data
    arrives, tansu only when the wait is over, and that wait is added to every saga hop."""
    return int(min(FETCH_WAIT_MAX_MS, max(FETCH_WAIT_MIN_MS, min_interval_s * 1000)))


class MessageConsumer:
    """One consumer of one topic for one saga participant; see the module docstring.

    `handler(messages)` gets a non-empty list of messages not processed before, in partition then
    offset order, and must record its effects together with the message ids (so `processed`
    reports them) before returning. Raising means "not done": the same batch (minus what
    `processed` then reports) comes again after a backoff. Any message may still come twice (the
    inbox, not this loop, is what makes handling exactly once)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        name: str,
        handler: Handler,
        processed: Processed,
        batch_max: int = 500,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        *,
        partitions: int | None = None,
        poll_timeout_ms: int = 500,
        min_interval_s: float = 0.0,
        commit_timeout_s: float = 10.0,
        admin_timeout_s: float = 15.0,
        max_poll_interval_ms: int = 300_000,
        fetch_max_wait_ms: int | None = None,
        fence_patience_s: float = 5.0,
        handler_backoff: Backoff | None = None,
        reconnect_backoff: Backoff | None = None,
        event_types: Collection[str] | None = None,
    ) -> None:
        """`event_types`: the message types the handler acts on (None: all). Others are skipped
        without an inbox lookup and committed with their batch (a topic carries types that only
        other consumers need)."""
        if partitions is None:
            partitions = saga_topic_partitions(topic)
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.name = name
        self.handler = handler
        self.processed = processed
        self.event_types = None if event_types is None else frozenset(event_types)
        self.batch_max = batch_max
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.partitions = partitions
        self.poll_timeout_ms = poll_timeout_ms
        # While the consumer keeps up (its last batch was not full), at least this long from one
        # fetch to the next. Each batch costs an offset commit, an inbox lookup, a call to the
        # shards and a transaction there, whatever its size: a consumer that takes every message
        # the moment it lands spends most of its CPU, and the broker's and the shards', on those
        # fixed costs, and starves the API at moderate load. Waiting lets aiokafka's background
        # fetcher gather the next batch meanwhile (see `fetch_pause_s`).
        self.min_interval_s = min_interval_s
        self._fetched_at = float("-inf")
        self._last_count = 0
        self.commit_timeout_s = commit_timeout_s
        self.admin_timeout_s = admin_timeout_s
        # A handler retried longer than this leaves the group (aiokafka's rule); its batch is then
        # not committed and comes again, to this consumer or another, and `processed` drops it.
        self.max_poll_interval_ms = max_poll_interval_ms
        # How long the broker may hold a fetch open waiting for data (`fetch_wait_ms`).
        self.fetch_max_wait_ms = fetch_max_wait_ms if fetch_max_wait_ms is not None else fetch_wait_ms(min_interval_s)
        self.handler_backoff = handler_backoff or Backoff(0.2, 5.0)
        self.reconnect_backoff = reconnect_backoff or Backoff(0.2, 5.0)
        self.handled = 0  # messages this instance handed to a handler that returned
        self.restarts = 0  # consumers replaced after broker trouble
        self.started_over = 0  # times partitions were read again from the beginning (_check_positions)
        # A fence that keeps refusing while no new assignment comes means aiokafka believes it is in
        # a group the broker has forgotten (seen on tansu after a restart: heartbeats go on, the
        # generation is -1, no rejoin). Past this, the consumer is replaced and joins afresh.
        self.fence_patience_s = fence_patience_s
        self._refused_since: float | None = None
        self.end_check_s = 2.0  # how often an idle consumer checks that it is not reading past the log's end
        self._ends_checked_at = time.monotonic()
        self._at_end = False  # the last fetch found nothing and every partition read to its end
        # The last batch acted on, whose end offsets are not committed yet: (membership that
        # fetched it, ends). They go out with the next fence, or on an empty fetch, or at a stop.
        self._pending: tuple[_Membership, dict[TopicPartition, int]] | None = None
        self._fetch_from_s: float | None = None  # `run`'s: no fetch before then
        self._stop_requested = asyncio.Event()
        self._finished = asyncio.Event()
        self._finished.set()
        self._outage: _Streak | None = None
        self._labels = {"consumer": name}
        # Metric children resolved once (per partition as partitions appear), not per batch.
        self._lag: dict[TopicPartition, Any] = {}  # removed when this consumer stops (see `run`)
        self._trace_topic = (split_generation(topic) or (topic, 0))[0]  # spans name the topic, not its generation
        self._batch_messages = BATCH_MESSAGES.labels(name)
        self._batch_seconds = BATCH_SECONDS.labels(name)
        HANDLER_FAILURES.labels(name)  # exported at 0 from the start
        self._lag_zeroed_at = 0.0

    # -- lifecycle

    async def run(self, stop: asyncio.Event, fetch_from_s: float | None = None) -> None:
        """Consume until `stop` is set or `stop()` is called; survives broker trouble (module docstring).

        Stopping lets a running handler call finish (its batch is committed if it succeeded),
        stops retrying a failing one without committing, and leaves the group. Cancelling the
        task stops at once, also without committing the batch in hand.

        With `fetch_from_s` (wall clock, epoch seconds) the consumer joins its group at once but
        fetches nothing before then: a topic generation's consumer starts ahead of its period so
        that the join is done when the first message comes (kafka_generations.py), and an empty
        fetch costs the broker 1-2.5 ms of CPU, five a second per consumer (BENCHMARKS.md)."""
        self._fetch_from_s = fetch_from_s
        self._finished.clear()
        try:
            while not self._stopping(stop):
                try:
                    await self._session(stop)
                except (asyncio.CancelledError, Exception) as exc:
                    self._broker_trouble(as_failure(exc))
                    await self._wait(stop, self.reconnect_backoff.next())
        finally:
            self._forget_lag()
            self._finished.set()

    def _forget_lag(self) -> None:
        """A consumer that stops (a drained topic generation: its topic name is new every period)
        takes its partitions' lag series with it, so the series stay those of live generations."""
        for tp in self._lag:
            with contextlib.suppress(KeyError):
                LAG.remove(self.name, tp.topic, str(tp.partition))
        self._lag.clear()

    def caught_up(self) -> bool:
        """True when the last fetch came back empty with every assigned partition read up to its
        high watermark (nothing is waiting, and nothing is being handled). A generation's topic
        that gets no more messages is drained once this holds (engine/adapters/kafka_generations.py)."""
        return self._at_end

    async def stop(self) -> None:
        """Make `run` stop (now or whenever it starts: stopping is final) and wait until it has left the group."""
        self._stop_requested.set()
        await self._finished.wait()

    def _stopping(self, stop: asyncio.Event) -> bool:
        return stop.is_set() or self._stop_requested.is_set()

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep up to `seconds`, returning early when asked to stop."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self._stop_requested)]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- one consumer's lifetime

    async def _session(self, stop: asyncio.Event) -> None:
        """Create the topic if missing, then consume with one AIOKafkaConsumer until stopped.

        Raises (and closes the consumer) when the consumer must be replaced."""
        await self._ensure_topic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            client_id=f"rezerv-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            max_poll_interval_ms=self.max_poll_interval_ms,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        self._pending = None  # a new consumer: what the old one left uncommitted comes again
        try:
            await consumer.start()
            assignments = _Assignments(partial(self._hold_if_early, consumer))
            consumer.subscribe([self.topic], listener=assignments)
            self._connected()
            checked_epoch = 0  # the topic was ensured just above
            while not self._stopping(stop):
                if assignments.epoch != checked_epoch:
                    checked_epoch = assignments.epoch
                    if await self._ensure_topic():
                        raise _RestartConsumer(f"topic {self.topic} was gone: the broker lost its data")
                pause = fetch_pause_s(
                    self.min_interval_s, time.monotonic() - self._fetched_at, self._last_count, self.batch_max
                )
                if pause > 0:
                    await self._wait(stop, pause)
                self._fetched_at = time.monotonic()
                if self._fetch_from_s is not None and time.time() >= self._fetch_from_s:
                    self._fetch_from_s = None
                    consumer.resume(*consumer.paused())
                records = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.batch_max)
                self._last_count = sum(len(batch) for batch in records.values())
                # No await since getmany returned: this is the membership that fetched `records`.
                fetched_under = _Membership(assignments.epoch, _generation(consumer))
                if records:
                    self._at_end = False
                    fetched_ns = time.time_ns() if tracing.ENABLED else 0
                    batch = decode_batch(records, self.event_types)
                    self._observe_fetch(consumer, batch)
                    await self._consume(consumer, assignments, fetched_under, batch, stop, fetched_ns)
                else:
                    # Read at the fetch (no await since getmany), but reported only after the last
                    # batch's ends went out: while that commit is in flight `caught_up` stays False,
                    # so a generation is not declared drained with a commit of ours still pending.
                    at_end = _at_end(consumer)
                    await self._commit_pending(consumer, assignments)
                    self._at_end = at_end
                    self._caught_up()
                    if time.monotonic() - self._ends_checked_at > self.end_check_s:
                        await self._check_positions(consumer)
            await self._commit_pending(consumer, assignments)  # stopping: leave nothing acted on uncommitted
        finally:
            self._at_end = False
            await self._close(consumer)

    def _hold_if_early(self, consumer: AIOKafkaConsumer, assigned: Collection[TopicPartition]) -> None:
        """Before `run`'s `fetch_from_s`, pause each partition as it is assigned (the rebalance
        listener runs before aiokafka's fetcher reads it): the fetcher sends no fetch for a paused
        partition, while `getmany` still polls (the group keeps this member) and returns nothing.
        The consume loop resumes them once the time has come."""
        if self._fetch_from_s is not None and time.time() < self._fetch_from_s and assigned:
            consumer.pause(*assigned)

    def _observe_fetch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        """Per fetched batch: its size, and each fetched partition's lag behind its high watermark."""
        self._batch_messages.observe(sum(batch.ends[tp] - batch.starts[tp] for tp in batch.ends))
        for tp, end in batch.ends.items():
            high = consumer.highwater(tp)
            if high is not None:
                child = self._lag.get(tp)
                if child is None:
                    child = self._lag[tp] = LAG.labels(self.name, tp.topic, str(tp.partition))
                child.set(max(0, high - end))

    def _caught_up(self) -> None:
        """An empty fetch: nothing is waiting on the partitions this consumer reads (set at most once a second)."""
        now = time.monotonic()
        if now - self._lag_zeroed_at >= 1.0:
            self._lag_zeroed_at = now
            for child in self._lag.values():
                child.set(0)

    async def _consume(
        self,
        consumer: AIOKafkaConsumer,
        assignments: _Assignments,
        fetched_under: _Membership,
        batch: Batch,
        stop: asyncio.Event,
        fetched_ns: int = 0,
    ) -> None:
        """Fence, act, and leave the batch's ends to be committed (see the module docstring)."""
        fence = fence_offsets(self._pending, fetched_under, batch.starts)
        self._pending = None  # committed with the fence, or dropped with it (those messages come again)
        if not await self._commit(consumer, assignments, fetched_under, fence, "fence"):
            # Not acted on. Unless a new assignment has set new positions already, seek back so that
            # this consumer cannot skip the batch, and pause: aiokafka is about to rejoin the group.
            if assignments.epoch == fetched_under.epoch:
                now = time.monotonic()
                if self._refused_since is None:
                    self._refused_since = now
                    log.info("consumer %s: batch fenced off (membership changed); waiting to rejoin", self.name)
                elif now - self._refused_since > self.fence_patience_s:
                    self._refused_since = None
                    raise _RestartConsumer(
                        f"still fenced off after {self.fence_patience_s:.0f} s with no new assignment: "
                        "the broker has forgotten this member"
                    )
                with contextlib.suppress(IllegalStateError):
                    for tp, offset in batch.starts.items():
                        consumer.seek(tp, offset)
                await self._wait(stop, 0.1)
            else:
                self._refused_since = None
            return
        self._refused_since = None
        started = time.perf_counter()
        started_ns = time.time_ns() if batch.delivered else 0
        acted = await self._act(batch, consumer, assignments, fetched_under, stop)
        self._batch_seconds.observe(time.perf_counter() - started)
        if batch.delivered and acted:
            tracing.record_consumed(
                self.name, self._trace_topic, batch.delivered, fetched_ns, started_ns, time.time_ns()
            )
        if acted:
            self._pending = (fetched_under, batch.ends)

    async def _commit_pending(self, consumer: AIOKafkaConsumer, assignments: _Assignments) -> None:
        """Commit the ends of the last batch acted on, if they are not committed yet."""
        if self._pending is not None:
            fetched_under, ends = self._pending
            self._pending = None
            await self._commit(consumer, assignments, fetched_under, ends, "batch")

    async def _act(
        self,
        batch: Batch,
        consumer: AIOKafkaConsumer,
        assignments: _Assignments,
        fetched_under: _Membership,
        stop: asyncio.Event,
    ) -> bool:
        """Hand the batch's fresh messages to the handler until it returns. False if given up
        (stopping, or the partitions were reassigned meanwhile: the batch then comes again)."""
        streak: _Streak | None = None
        backoff = Backoff(self.handler_backoff.first, self.handler_backoff.cap)
        while True:
            try:
                wanted = wanted_messages(batch.messages, self.event_types)
                ids = list(dict.fromkeys(m.message_id for m in wanted))
                done = await self.processed(ids) if ids else set()
                fresh = select_fresh(wanted, done)
                if fresh:
                    await self.handler(fresh)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                HANDLER_FAILURES.labels(**self._labels).inc()
                streak = streak or _Streak()
                if streak.is_new(exc):
                    log.warning(
                        "consumer %s: acting on %d messages failed; retrying the batch with backoff",
                        self.name,
                        len(batch.messages),
                        exc_info=exc,
                    )
                else:
                    log.debug("consumer %s: still failing: %r", self.name, exc)
                if not self._stopping(stop):
                    await self._wait(stop, backoff.next())
                if self._stopping(stop):
                    return False
                if not fetched_under.is_current(assignments, consumer):
                    log.info("consumer %s: partitions reassigned; the failing batch will come again", self.name)
                    return False
                continue
            if streak is not None:
                log.info(
                    "consumer %s: batch handled after %d failed attempts in %.1f s",
                    self.name,
                    streak.attempts,
                    time.monotonic() - streak.since,
                )
            self._count(batch, wanted, fresh)
            return True

    def _count(self, batch: Batch, wanted: list[OutboxMessage], fresh: list[OutboxMessage]) -> None:
        for bad in batch.undecodable:
            log.warning(
                "consumer %s: skipped undecodable message %s[%d]@%d: %s",
                self.name,
                bad.topic,
                bad.partition,
                bad.offset,
                bad.reason,
            )
        self.handled += len(fresh)
        for outcome, n in (
            ("handled", len(fresh)),
            ("duplicate", len(wanted) - len(fresh)),
            ("skipped", batch.skipped + len(batch.messages) - len(wanted)),
            ("undecodable", len(batch.undecodable)),
        ):
            if n:
                MESSAGES.labels(outcome=outcome, **self._labels).inc(n)

    async def _commit(
        self,
        consumer: AIOKafkaConsumer,
        assignments: _Assignments,
        fetched_under: _Membership,
        offsets: dict[TopicPartition, int],
        what: str,
    ) -> bool:
        """Commit `offsets` if the membership that fetched them is still current. True if committed.

        False after a rebalance or when the broker forgot this member (the messages come again,
        and `processed` drops what was done); raises _RestartConsumer when the broker does not
        answer or refuses for another reason."""
        if not fetched_under.is_current(assignments, consumer):
            return False
        try:
            async with asyncio.timeout(self.commit_timeout_s):
                await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info(
                "consumer %s: %s commit refused (%s); the batch will come again", self.name, what, type(exc).__name__
            )
            return False
        except Exception as exc:
            raise _RestartConsumer(f"{what} commit failed: {exc!r}") from exc
        return fetched_under.is_current(assignments, consumer)

    async def _check_positions(self, consumer: AIOKafkaConsumer) -> None:
        """Start a partition over from its beginning if this consumer reads beyond its end.

        Seen with tansu in the saga's chaos test: a batch fetched before a broker restart is
        committed, after it, to the new broker, which accepts offsets of the old, longer log. From
        then on every consumer of the group starts past the end of the new log and is answered with
        no records, forever; the relay recreates the topic at once, so "topic gone" does not fire.
        Everything in the new log arrived after the restart, so the partition is read again from
        its beginning; whatever of it was already acted on, `processed` drops.

        The end is the high watermark of the partition's last fetch response, not a ListOffsets
        answer: tansu answers ListOffsets(latest) with the first offset of the log's last batch,
        which a consumer at the true end is past whenever that batch held more than one record
        (which made every idle consumer read its whole topic again every few seconds)."""
        self._ends_checked_at = time.monotonic()
        assigned = list(consumer.assignment())
        if not assigned:
            return
        async with asyncio.timeout(self.commit_timeout_s):
            ends = {tp: end for tp in assigned if (end := consumer.highwater(tp)) is not None}
            positions = {tp: await consumer.position(tp) for tp in ends}
            past = beyond_the_end(positions, ends)
            if past:
                self.started_over += 1
                log.warning(
                    "consumer %s: reading past the end of %s (position, end): the broker lost its log; starting over",
                    self.name,
                    {f"{tp.topic}[{tp.partition}]": (positions[tp], ends[tp]) for tp in past},
                )
                await consumer.seek_to_beginning(*past)

    async def _ensure_topic(self) -> bool:
        """Create the topic if it is missing; True if it had to be created."""
        async with asyncio.timeout(self.admin_timeout_s):
            return bool(await ensure_topics(self.bootstrap, {self.topic: self.partitions}))

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """Leave the group (nothing is committed here: auto commit is off)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.commit_timeout_s):
                await consumer.stop()

    # -- logging broker trouble once per outage

    def _broker_trouble(self, exc: Exception) -> None:
        self.restarts += 1
        if self._outage is None:
            self._outage = _Streak()
        if self._outage.is_new(exc):
            log.warning(
                "consumer %s: %s; starting a new consumer with backoff",
                self.name,
                exc if isinstance(exc, _RestartConsumer) else repr(exc),
            )
        else:
            log.debug("consumer %s: still failing: %r", self.name, exc)

    def _connected(self) -> None:
        self.reconnect_backoff.reset()
        if self._outage is not None:
            log.info(
                "consumer %s: consuming again after %d failed attempts in %.1f s",
                self.name,
                self._outage.attempts,
                time.monotonic() - self._outage.since,
            )
            self._outage = None
