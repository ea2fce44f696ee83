"""Ports: what the engine and the API need from the outside world, as Protocols, all in this module.

Adapters live in engine/adapters/ (asyncpg, redis, aiokafka, and in-memory fakes for unit
tests). The same contract tests (tests/contract/) run against the fake and the real adapter, so
a unit test on the fake proves something about production.

Why one module: a reader finds every boundary of the system in one place, and a service shows
what it depends on by importing from here, never from an adapter. The records a port passes
(an Account, a Topup, a Notification...) stay with the service that defines their meaning;
this module names them for the type checker only. tests/unit/test_ports.py keeps it so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from engine.domain.commands import Command
from engine.domain.fast_init import speed_up_init
from engine.domain.results import Reply
from engine.log import LogCheckpoint, LoggedEvent

if TYPE_CHECKING:
    from engine.accounts import Account, RefreshToken, UseResult
    from engine.notifications import Delivery, Notification, Stored, Webhook
    from engine.outbox import OutgoingMessage
    from engine.projections.bookings import Booking
    from engine.projections.catalog_queries import CarPage, CarQuery, EventPage, EventQuery, Position
    from engine.projections.ledger import Entry
    from engine.sales import EntitySales
    from engine.topups import Checkout, Topup


@speed_up_init
@dataclass(frozen=True, slots=True)
class NewEvent:
    event_type: str
    data: bytes


@dataclass(slots=True)
class StreamAppend:
    """Events for one stream: `expected_version` is the version before them, `token` the writer's fence.

    `inbox` holds (consumer, message id) pairs of the Kafka messages that caused these events; the
    store records them with the events, all or nothing."""

    stream_id: str
    expected_version: int
    token: int
    events: list[NewEvent] = field(default_factory=list)
    inbox: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Streams whose events were NOT appended, and why; every other stream's events were."""

    fenced: frozenset[str] = frozenset()  # a newer token is recorded for the stream
    conflicts: frozenset[str] = frozenset()  # the stream's version is not the expected one

    @property
    def failed(self) -> frozenset[str]:
        return self.fenced | self.conflicts


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    stream_id: str
    version: int
    event_type: str
    data: bytes
    position: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    stream_id: str
    version: int
    state: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """What registering a fencing token found: the stream's current version."""

    stream_id: str
    version: int


class Turn:
    """A place in line for the step of an append that moves stream heads.

    A host commits up to two groups at once; their head updates must still happen in the order
    the groups were formed, or the later group would find a stream short of the version it
    expects. The committer hands each append a turn chained to the previous one; the store
    enters it (`async with turn:`) around its head update. Leaving a turn always lets the next
    one in, whether the update succeeded or not."""

    __slots__ = ("_mine", "_previous")

    def __init__(self, previous: asyncio.Event | None = None) -> None:
        self._previous = previous
        self._mine = asyncio.Event()

    @property
    def done(self) -> asyncio.Event:
        return self._mine

    def finish(self) -> None:
        self._mine.set()

    async def __aenter__(self) -> None:
        if self._previous is not None:
            await self._previous.wait()

    async def __aexit__(self, *exc: object) -> None:
        self._mine.set()


def check_one_append_per_stream(appends: Sequence[StreamAppend]) -> None:
    if len({a.stream_id for a in appends}) != len(appends):
        raise ValueError("an append call takes at most one StreamAppend per stream")


class EventStore(Protocol):
    async def claim(self, stream_id: str, token: int, owner: str) -> Claim:
        """Record `token` as the stream's newest; raise OwnershipLost if a newer one is recorded.

        Any append still carrying an older token fails from this moment. Returns the stream's
        version as of the claim (0 for a new stream)."""

    async def current_token(self, stream_id: str) -> int:
        """The newest token recorded for the stream (0 if none)."""

    async def append(self, appends: Sequence[StreamAppend], turn: Turn | None = None) -> AppendResult:
        """Append events of many streams in one transaction (group commit).

        Per stream, all or nothing: a stream whose token is stale or whose expected version is
        not current is skipped and reported; the others are durable when this returns. With a
        `turn`, the step that moves stream heads waits for the previous turn."""

    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        """Events of the stream with version > after_version, in order."""

    async def load_snapshot(self, stream_id: str) -> Snapshot | None: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the snapshot if it is newer than the stored one."""

    async def save_snapshot_in_parts(self, stream_id: str, version: int, parts: Sequence[bytes]) -> None:
        """`save_snapshot` of the parts joined, sent a part at a time: the snapshot of a hot event
        is megabytes, and sent in one go it held the caller's event loop for up to 100 ms under
        load (BENCHMARKS.md, "the snapshot sent in parts")."""

    async def processed(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        """Which of `message_ids` the consumer has already acted on (recorded with their events)."""


class Fencing(Protocol):
    async def acquire(self, stream_id: str, owner: str, floor: int, lease_ms: int) -> int:
        """A token greater than every token issued before for the stream, and greater than `floor`."""

    async def renew(self, leases: Sequence[tuple[str, int]], owner: str, lease_ms: int) -> list[str]:
        """Extend leases of (stream, token); returns the streams whose lease another owner now holds."""

    async def release(self, leases: Sequence[tuple[str, int]], owner: str) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass
class ManualClock:
    """A clock tests move by hand."""

    now: int = 1_800_000_000_000

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


# ---- what the saga supervisor reads (engine/saga_supervisor.py) ------------------------------
@dataclass(frozen=True, slots=True)
class UndecidedHold:
    """A HELD booking with no payment decision: re-send its hold event, `booking_stream` at `hold_version`."""

    hold_id: str
    booking_stream: str
    hold_version: int
    held_at: int


@dataclass(frozen=True, slots=True)
class UndeliveredDecision:
    """A payment decided while its booking is still HELD: the booking is to be confirmed or released
    (the payment worker died between the two, or the broker lost the hold's message after the
    charge). `booking_stream` is where the booking lives; `payment_reason` why a payment FAILED.
    The supervisor completes the booking from these alone (engine/saga.py, `booking_update`)."""

    hold_id: str
    payment_status: str  # SUCCEEDED or FAILED
    payment_decided_at: int
    booking_stream: str
    payment_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unrefunded:
    """A paid booking that ended (RELEASED, EXPIRED, CANCELLED) unrefunded: re-send its ending,
    `booking_stream` at `terminal_version`; `ended_at` is the time of that event."""

    hold_id: str
    booking_stream: str
    terminal_version: int
    status: str
    ended_at: int


@dataclass(frozen=True, slots=True)
class OverdueHold:
    """A booking still HELD after its expiry (plus grace): expire it with ExpireHold."""

    kind: str
    entity_id: str
    hold_id: str
    expires_at: int


class PendingSagas(Protocol):
    """The bookings read model's view of unfinished sagas, the log's events by (stream, version),
    and the consumers' inbox: everything the saga supervisor reads or trims.

    Every query returns at most `limit` rows, oldest first, and raises StoreUnavailable when the
    store cannot be reached. Adapters: engine/adapters/pg_sagas.py and the in-memory fake
    engine/adapters/memory_sagas.py, held to one contract (tests/contract/pending_sagas.py)."""

    async def undecided_holds(self, older_than_ms: int, limit: int) -> list[UndecidedHold]:
        """HELD bookings with no payment decision, held before `older_than_ms` (epoch ms)."""

    async def undelivered_decisions(self, older_than_ms: int, limit: int) -> list[UndeliveredDecision]:
        """Bookings still HELD although their payment SUCCEEDED or FAILED before `older_than_ms`."""

    async def unrefunded(self, older_than_ms: int, limit: int) -> list[Unrefunded]:
        """Bookings that ended before `older_than_ms` while their payment stands SUCCEEDED."""

    async def overdue_holds(self, now_ms: int, grace_ms: int, limit: int) -> list[OverdueHold]:
        """HELD bookings with ``expires_at + grace_ms < now_ms``, most overdue first."""

    async def events_at(self, keys: Sequence[tuple[str, int]]) -> list[LoggedEvent]:
        """The stored events at these (stream, version) pairs; pairs with no event are left out."""

    async def purge_inbox(self, older_than_s: float, limit: int) -> int:
        """Forget up to `limit` processed-message rows older than `older_than_s`; returns how many."""


class PageCache(Protocol):
    """Cached answers (catalog pages) per kind, each kind with a generation that invalidates.

    Cache-aside without a race: a reader looks up a page and learns the kind's generation in the
    same step, reads the database only on a miss, and stores what it read under the generation
    it saw. A writer that changed the data moves the generation after its commit: a page read
    before the change was stored under the old generation, which no lookup asks for again, so a
    stale page can only be served until its TTL ends if a writer fails to invalidate."""

    async def lookup(self, kind: str, key: str) -> tuple[int, bytes | None]:
        """(the kind's current generation, the page stored for `key` under it or None)."""

    async def store(self, kind: str, key: str, generation: int, page: bytes, ttl_s: float) -> None:
        """Keep `page` for `key` under `generation` for `ttl_s` seconds."""

    async def invalidate(self, kinds: Iterable[str]) -> None:
        """Move each kind to a new generation: no page stored before is looked up again."""


class GenerationRegistry(Protocol):
    """Which consumers read a topic, and which of its generations each has drained, so that a
    generation every active consumer is done with can be deleted (engine/outbox.py "topic
    generations", engine/adapters/kafka_generations.py). Adapters: engine/adapters/pg_generations.py
    and the in-memory engine/adapters/memory_generations.py, held to one contract
    (tests/contract/generations.py). Times are epoch milliseconds, given by the caller."""

    async def heartbeat(self, consumer: str, topic: str, now_ms: int) -> None:
        """`consumer` reads `topic` (its generations) and is alive at `now_ms`."""

    async def drained(self, consumer: str, topic: str) -> set[int]:
        """The generations of `topic` that `consumer` has recorded as drained."""

    async def mark_drained(self, consumer: str, topic: str, generation: int) -> None:
        """`consumer` has acted on every message of `topic`'s `generation` (idempotent)."""

    async def retirable(self, topic: str, generations: Sequence[int], alive_since_ms: int) -> list[int]:
        """Those of `generations` that every consumer of `topic` seen alive since `alive_since_ms`
        has drained; none while no consumer of `topic` has been seen since then."""

    async def forget(self, topic: str, generations: Sequence[int]) -> None:
        """Drop what is recorded about these generations of `topic` (they have been deleted)."""


# ---- settled records moved out of entity memory (the host archives them, reads them back) ----
@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """A settled record an entity moved out of memory: its key (a hold id or a saga id), the
    entity's own encoding of it, and until when it must be kept (epoch ms)."""

    key: str
    record: bytes
    keep_until: int


class RecordArchive(Protocol):
    """Adapters: the event stores (engine/adapters/memory_store.py, pg_event_store.py), which know
    the streams' fencing tokens; held to one contract (tests/contract/record_archive.py)."""

    async def put(self, stream_id: str, token: int, rows: Sequence[ArchivedRecord]) -> None:
        """Store every row durably, replacing a row of the same stream and key, in one transaction;
        raise OwnershipLost (engine.domain.errors) and store nothing if `token` is not the stream's
        current token (the store checks fencing, as `append` does). No rows: a no-op, nothing checked."""

    async def get(self, stream_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The records of those keys archived for this stream; keys not archived are absent."""

    async def forget(self, before_ms: int, limit: int = 10_000) -> int:
        """Delete up to `limit` rows whose keep_until is before `before_ms`; returns how many."""


# ---- the sales read model (engine/sales.py) ----------------------------------------------------
class SalesReadModel(Protocol):
    """Sales per entity (engine/sales.py): moved by the bookings projection in each batch's
    transaction, read by /metrics and GET /sales. Adapters: engine/adapters/pg_sales.py and the
    in-memory fake engine/adapters/memory_sales.py, held to one contract (tests/contract/sales.py).
    Raises StoreUnavailable when the store cannot be reached."""

    async def top(self, limit: int) -> list[EntitySales]:
        """The `limit` entities with the most revenue (then the most bookings held)."""

    async def of(self, entity: str) -> EntitySales | None:
        """One entity's counters (`event/<id>` or `car/<id>`), None if it never had a booking."""

    async def totals(self) -> EntitySales:
        """Every entity's counters added up (entity "*")."""


# ---- the engine, as the saga's workers and supervisor drive it ---------------------------------
ExecuteCommands = Callable[[Sequence[Command]], Awaitable[list[Reply]]]
"""Apply a batch of commands on the shards (actors/client.py `execute_many`, or a local host in
tests): one reply per command, in order, a Result or the RezervError that refused it."""


# ---- the event log, read in order by the relay and the projections (engine/following.py) ---------
class LogSubscription(Protocol):
    """A live "the log grew" notification; closing it stops the callbacks."""

    def is_active(self) -> bool:
        """False once closed or once its connection is gone (then listen again, or just poll)."""

    async def close(self) -> None: ...


class LogReader(Protocol):
    async def read_after(self, checkpoint: LogCheckpoint, limit: int) -> list[LoggedEvent]:
        """Up to `limit` events after `checkpoint`, in log order, none of them still uncommitted.

        Reading again from the checkpoint of the last event returned never skips an event that
        commits later. Raises StoreUnavailable when the store cannot be reached."""

    async def read_matching(
        self, checkpoint: LogCheckpoint, limit: int, event_types: Collection[str]
    ) -> tuple[list[LoggedEvent], LogCheckpoint, int]:
        """The events of `event_types` among the next `limit` events after `checkpoint` (what
        `read_after` would return, filtered), the checkpoint of the last event scanned
        (`checkpoint` if none) and how many were scanned: a reader of a few types moves past
        the others without receiving them."""

    async def load_checkpoint(self, name: str) -> LogCheckpoint:
        """The saved checkpoint of reader `name`, or START if it has none."""

    async def save_checkpoint(self, name: str, checkpoint: LogCheckpoint) -> None:
        """Save reader `name`'s checkpoint, unless the saved one is already further (never backwards)."""

    async def lag(self, checkpoint: LogCheckpoint, exact_up_to: int = 10_000) -> int:
        """Committed events after `checkpoint`: exact up to `exact_up_to`, an estimate above it."""

    async def listen(self, on_append: Callable[[], None]) -> LogSubscription:
        """Call `on_append` (no arguments, in the event loop) soon after events are appended.

        A wake-up hint only: it may come late, twice, or for an append a reader cannot read yet;
        readers still poll."""


# ---- the message broker, as the outbox relay and the saga supervisor publish to it ---------------
class Publisher(Protocol):
    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Return only when the broker has acknowledged every message; else raise PublishFailed."""


# ---- accounts, refresh tokens and failed log-ins (engine/accounts.py) ----------------------------
class AccountStore(Protocol):
    async def create(self, account: Account) -> bool:
        """Store a new account; False if its login (or id) is taken."""

    async def by_login(self, login: str) -> Account | None: ...

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        """Replace the account's hash (a rehash with the current parameters at log-in)."""

    async def add_refresh(self, token: RefreshToken) -> None: ...

    async def use_refresh(self, token_hash: str, now_ms: int) -> UseResult:
        """Present a refresh token, atomically: if it is current (see engine.domain.accounts
        `presented`), use it up; if it was used before, revoke its family. Returns what happened
        (with the account and the family to continue), and on a reuse the access tokens of the
        family to refuse."""

    async def revoke_family(self, token_hash: str, now_ms: int) -> tuple[tuple[str, int], ...]:
        """Revoke the family of a refresh token (logging out); returns its access tokens (jti, expiry)."""


class FailureCounter(Protocol):
    async def counts(self, keys: Sequence[str]) -> list[tuple[int, float]]:
        """Per key: (failures counted, seconds left in their window; 0 if none)."""

    async def add(self, keys: Sequence[str], window_s: float) -> None:
        """Count one failure for each key; a key's window starts at its first failure."""

    async def clear(self, key: str) -> None: ...


# ---- top-ups and the payment provider behind them (engine/topups.py) -----------------------------
class TopupStore(Protocol):
    async def open(self, topup: Topup, daily_limit: int) -> Topup:
        """Record `topup` PENDING (or return the one with its id, recorded before). Raises
        TopupLimit if the customer's top-ups of the last 24 hours plus this one pass `daily_limit`;
        IdempotencyConflict-like TopupRefused if the id was used for another amount or customer."""

    async def checkout(self, topup_id: str, provider_ref: str, checkout_url: str) -> None: ...

    async def by_provider_ref(self, provider_ref: str) -> Topup | None: ...

    async def get(self, topup_id: str) -> Topup | None: ...

    async def credited(self, topup_id: str, now_ms: int) -> None: ...


class PaymentProvider(Protocol):
    async def create_checkout(self, topup: Topup, callback_url: str) -> Checkout:
        """Ask the provider for a checkout of `topup` (idempotent by topup id)."""


# ---- notifications and webhooks (engine/notifications.py, engine/notifier.py) --------------------
class NotificationStore(Protocol):
    async def store(self, notifications: Sequence[Notification], now_ms: int) -> int:
        """Store the ones not stored before (by message id), in one transaction with a webhook
        delivery for each whose customer has a webhook; returns how many were stored now (the
        notifier only counts them and wakes the webhook worker; readers use `page` and `after`)."""

    async def page(self, customer_id: str, before_id: int, limit: int, unread_only: bool) -> list[Stored]:
        """The customer's notifications older than `before_id`, newest first."""

    async def mark_read(self, customer_id: str, ids: Sequence[int] | None, now_ms: int) -> int:
        """Mark the customer's notifications `ids` (None: all) read; returns how many changed."""

    async def after(self, customer_ids: Sequence[str], after_id: int, limit: int) -> list[Stored]:
        """Notifications of these customers stored after `after_id`, oldest first (the live stream)."""

    async def last_id(self) -> int: ...

    async def set_webhook(self, webhook: Webhook) -> None: ...

    async def webhook(self, customer_id: str) -> Webhook | None: ...

    async def delete_webhook(self, customer_id: str) -> bool: ...

    async def due(self, now_ms: int, limit: int) -> list[Delivery]:
        """Deliveries whose time has come, oldest first."""

    async def delivered(self, delivery_ids: Sequence[int]) -> None: ...

    async def retry_later(self, delivery_id: int, attempts: int, at_ms: int, error: str) -> None: ...

    async def dead_letter(self, delivery_id: int, attempts: int, error: str, now_ms: int) -> None:
        """Move the delivery to the dead-letter table (kept for an operator, never retried)."""

    async def dead_letters(self, customer_id: str) -> list[tuple[int, int, str]]:
        """(notification id, attempts, last error) of the customer's parked deliveries."""


# ---- the catalog's read side (engine/projections/catalog_queries.py) -----------------------------
class CatalogReader(Protocol):
    async def search_events(self, query: EventQuery, limit: int, after: Position | None) -> EventPage:
        """Up to `limit` events matching `query`, in its sort order, strictly after `after`.

        Raises InvalidPosition when `after` does not fit the sort."""

    async def search_cars(self, query: CarQuery, limit: int, after: Position | None) -> CarPage:
        """Up to `limit` cars matching `query`, in its sort order, strictly after `after`."""


# ---- revoked access tokens (api/revocation.py) ---------------------------------------------------
class RevocationStore(Protocol):
    async def revoke(self, token_id: str, expires_at_ms: int, reason: str) -> bool:
        """Record the revocation until `expires_at_ms` (epoch ms); False if it was recorded already."""

    async def active(self) -> set[str]:
        """The ids of revocations not yet past their expiry."""


# ---- the bookings read model, as the API reads it ------------------------------------------------
class BookingsRepository(Protocol):
    async def get(self, hold_id: str) -> Booking | None:
        """The booking, or None if the read model has no such hold."""

    async def of_customer(
        self, customer_id: str, limit: int, statuses: Sequence[str] = (), before: tuple[int, str] | None = None
    ) -> list[Booking]:
        """Up to `limit` of the customer's bookings in `statuses` (any if empty), most recently
        held first (ties by hold id, descending), after `before` = (held_at, hold_id) if given."""


# ---- wallet statements and pending payments, as the API reads them -------------------------------
class MoneyReads(Protocol):
    async def statement(self, wallet_id: str, before_version: int, limit: int) -> list[Entry]: ...

    async def pending_payments(self, customer_id: str) -> int:
        """The amount of the customer's bookings HELD and not paid yet."""
