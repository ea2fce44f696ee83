"""The money-and-inventory audit after a load run, as pure checks over facts.

Facts come from two kinds of places: what the load generator's users were told (`ClientHold`,
one per Idempotency-Key, from loadtest/records.py) and what the system stored (rezerv: its event
store and bookings read model, loadtest/store_audit.py; a baseline: its own tables,
loadtest/baselines/audit.py). Each rule below is one `Check` of the verdict; the verdict fails
the command when any check fails.

The inventory is replayed here from raw events (`InventoryReplay`), not through the aggregates,
for the same reason as the money (loadtest/ledger.py): the auditor must not trust the code it
audits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from engine.domain.booking import ALLOWED, BookingStatus
from engine.domain.commands import split_stream_id
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CapacityAdded,
    CarBlocked,
    CarHeld,
    CarUnblocked,
    EventCreated,
    HoldExpired,
    HoldReleased,
    TicketsHeld,
)
from engine.projections.bookings import Booking
from engine.projections.ledger import Entry
from loadtest.ledger import SUCCEEDED, Decision, MoneyAudit, balance_mismatches

EXAMPLES = 5  # problems quoted per check; the count says how many there are
MANUAL_PAYMENT_PREFIX = "manual:"  # an admin's confirmation without payment (api/routes_inventory.py)

HELD = BookingStatus.HELD.value
CONFIRMED = BookingStatus.CONFIRMED.value
ENDED = (BookingStatus.RELEASED.value, BookingStatus.EXPIRED.value, BookingStatus.CANCELLED.value)

NO_ANSWER = 0  # the client gave up without a definitive answer (network errors, 503s, 429s to the end)
NO_OUTCOME = -1  # the client recorded the attempt but never its outcome (stopped mid-request)


# ---- the verdict ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    checked: int  # how many things the rule looked at
    problems: tuple[str, ...] = ()
    note: str = ""  # what else the reader should know (counted, not a failure)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "ok": self.ok,
            "checked": self.checked,
            "problems": len(self.problems),
            "examples": list(self.problems[:EXAMPLES]),
            "note": self.note,
        }


@dataclass
class Verdict:
    target: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)  # stored holds, oversold tickets, ...

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def table(self) -> str:
        """The verdict as a fixed-width table, one row per check, examples below a failed row."""
        width = max((len(c.name) for c in self.checks), default=10)
        lines = [f"audit of {self.target}: {'OK' if self.ok else 'FAILED'}"]
        for c in self.checks:
            verdict = "ok" if c.ok else f"FAILED ({len(c.problems)})"
            note = f"  {c.note}" if c.note else ""
            lines.append(f"  {c.name:<{width}}  {verdict:<12} {c.checked:>9} checked{note}")
            lines += [f"      - {p}" for p in c.problems[:EXAMPLES]]
        if self.figures:
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in self.figures.items()))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "checks": [c.as_json() for c in self.checks],
            "figures": self.figures,
        }


# ---- facts ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientHold:
    """What the load generator knows about one Idempotency-Key: every hold id a 201 named, and the
    last answer (NO_ANSWER, NO_OUTCOME, or an HTTP status)."""

    customer: str
    entity: str  # the stream id of the event or car, "event/<id>" or "car/<id>"
    key: str
    hold_id: str  # the id the key derives (api/hold_keys.py): where a hold for this key must be
    status: int
    acked: tuple[str, ...] = ()  # the hold_id of every 201, retries included
    amount: int | None = None
    expires_at: int | None = None

    @property
    def definitive_refusal(self) -> bool:
        """The client was told no (4xx other than 408 and 429): nothing may have been stored."""
        return 400 <= self.status < 500 and self.status not in (408, 429)

    @property
    def unanswered(self) -> bool:
        return self.status in (NO_ANSWER, NO_OUTCOME) or self.status >= 500 or self.status in (408, 429)


@dataclass(frozen=True, slots=True)
class StoredHold:
    hold_id: str
    entity: str
    customer: str
    amount: int
    expires_at: int


@dataclass
class TierCount:
    quantity: int = 0
    held: int = 0
    confirmed: int = 0
    worst_excess: int = 0  # the most tickets ever over the quantity


@dataclass
class InventoryReplay:
    """Replays ticket and car streams from raw events: holds stored, booking statuses, tier counts,
    car calendars. Feed each stream's events in version order (`apply`)."""

    stored: list[StoredHold] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    ended_at: dict[str, int] = field(default_factory=dict)
    manual: set[str] = field(default_factory=set)  # confirmed by an admin without payment
    tiers: dict[tuple[str, str], TierCount] = field(default_factory=dict)
    tier_problems: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    transition_problems: list[str] = field(default_factory=list)
    cars_checked: int = 0
    _hold_tiers: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = field(default_factory=dict)
    _calendars: dict[str, dict[str, tuple[int, int]]] = field(default_factory=lambda: defaultdict(dict))
    _hold_entity: dict[str, str] = field(default_factory=dict)

    def apply(self, stream_id: str, event: object) -> None:
        if isinstance(event, EventCreated):
            for spec in event.tiers:
                self.tiers[(stream_id, spec.name)] = TierCount(quantity=spec.quantity)
        elif isinstance(event, CapacityAdded):
            self.tiers.setdefault((stream_id, event.tier), TierCount()).quantity += event.quantity
        elif isinstance(event, TicketsHeld):
            self._stored(stream_id, event.hold_id, event.customer_id, event.amount, event.expires_at)
            self._hold_tiers[event.hold_id] = (stream_id, event.quantities)
            self._move_tickets(event.hold_id, held=+1, confirmed=0)
        elif isinstance(event, CarBlocked):
            self._take(stream_id, event.block_id, event.start.toordinal(), event.end.toordinal())
        elif isinstance(event, CarUnblocked):
            self._calendars[stream_id].pop(event.block_id, None)
        elif isinstance(event, CarHeld):
            self._stored(stream_id, event.hold_id, event.customer_id, event.amount, event.expires_at)
            self.cars_checked += 1
            self._take(stream_id, event.hold_id, event.start.toordinal(), event.end.toordinal())
        elif isinstance(event, BookingConfirmed):
            if self._transition(event.hold_id, CONFIRMED, event.at):
                if event.payment_ref.startswith(MANUAL_PAYMENT_PREFIX):
                    self.manual.add(event.hold_id)
                self._move_tickets(event.hold_id, held=-1, confirmed=+1)
        elif isinstance(event, HoldReleased | HoldExpired | BookingCancelled):
            target = {HoldReleased: ENDED[0], HoldExpired: ENDED[1], BookingCancelled: ENDED[2]}[type(event)]
            was = self.status.get(event.hold_id)
            if self._transition(event.hold_id, target, event.at):
                if was == HELD:
                    self._move_tickets(event.hold_id, held=-1, confirmed=0)
                else:
                    self._move_tickets(event.hold_id, held=0, confirmed=-1)
                self._free(event.hold_id)

    def _stored(self, stream_id: str, hold_id: str, customer: str, amount: int, expires_at: int) -> None:
        self.stored.append(StoredHold(hold_id, stream_id, customer, amount, expires_at))
        if hold_id not in self.status:
            self.status[hold_id] = HELD
            self._hold_entity[hold_id] = stream_id

    def _transition(self, hold_id: str, target: str, at: int) -> bool:
        current = self.status.get(hold_id)
        if current is None:
            self.transition_problems.append(f"{target} for hold {hold_id}, which was never stored")
            return False
        if target not in {s.value for s in ALLOWED[BookingStatus(current)]}:
            self.transition_problems.append(f"hold {hold_id}: {current} -> {target} is not a valid transition")
            return False
        self.status[hold_id] = target
        if target in ENDED:
            self.ended_at[hold_id] = at
        return True

    def _move_tickets(self, hold_id: str, held: int, confirmed: int) -> None:
        placed = self._hold_tiers.get(hold_id)
        if placed is None:
            return  # a car
        stream_id, quantities = placed
        for tier_name, count in quantities:
            tier = self.tiers.get((stream_id, tier_name))
            if tier is None:
                self.tier_problems.append(f"{stream_id}: hold {hold_id} takes tier {tier_name}, which does not exist")
                continue
            tier.held += held * count
            tier.confirmed += confirmed * count
            taken = tier.held + tier.confirmed
            if taken > tier.quantity:
                excess = taken - tier.quantity
                if excess > tier.worst_excess:
                    tier.worst_excess = excess
                    self.tier_problems.append(
                        f"{stream_id} tier {tier_name}: {taken} held or confirmed of {tier.quantity} (hold {hold_id})"
                    )
            if tier.held < 0 or tier.confirmed < 0:
                self.tier_problems.append(f"{stream_id} tier {tier_name}: negative count after hold {hold_id}")

    def _take(self, stream_id: str, owner: str, start: int, end: int) -> None:
        calendar = self._calendars[stream_id]
        for other, (s, e) in calendar.items():
            if start < e and s < end:
                self.overlaps.append(f"{stream_id}: {owner} overlaps {other}")
        calendar[owner] = (start, end)

    def _free(self, hold_id: str) -> None:
        stream_id = self._hold_entity.get(hold_id, "")
        if split_stream_id(stream_id)[0] == "car":
            self._calendars[stream_id].pop(hold_id, None)

    @property
    def oversold_tickets(self) -> int:
        return sum(t.worst_excess for t in self.tiers.values())


# ---- the rules -----------------------------------------------------------------------------
ACKNOWLEDGED = "acknowledged holds stored exactly once"
UNACKNOWLEDGED = "no hold stored that nobody was told about"
IDEMPOTENCY = "every idempotency key maps to one booking"
TIERS = "no tier over its quantity"
RENTALS = "no overlapping rentals"
LIFETIMES = "every booking ended or inside its time-to-live"
BALANCES = "balance = deposits - charges + refunds"
CHARGES = "no saga charged twice, refunds at most once"
PAID = "every paid booking charged once, for its amount"
READ_MODEL = "the bookings read model equals a replay of the log"
STATEMENTS = "every statement equals a replay of the log and adds up to the balance"


def check_acknowledged(clients: Iterable[ClientHold], stored: Sequence[StoredHold]) -> Check:
    by_id: dict[str, list[StoredHold]] = defaultdict(list)
    for hold in stored:
        by_id[hold.hold_id].append(hold)
    problems: list[str] = []
    checked = 0
    for client in clients:
        if not client.acked:
            continue
        checked += 1
        hold_id = client.acked[0]
        found = by_id.get(hold_id, [])
        if not found:
            problems.append(f"hold {hold_id} (key {client.key}) was acknowledged but is not stored")
        elif len(found) > 1:
            problems.append(f"hold {hold_id} is stored {len(found)} times")
        elif client.amount is not None and (found[0].amount, found[0].expires_at) != (
            client.amount,
            client.expires_at,
        ):
            problems.append(
                f"hold {hold_id}: told amount {client.amount} until {client.expires_at}, stored "
                f"{found[0].amount} until {found[0].expires_at}"
            )
    return Check(ACKNOWLEDGED, checked, tuple(problems))


def check_unacknowledged(clients: Iterable[ClientHold], stored: Sequence[StoredHold], entities: set[str]) -> Check:
    """Every hold stored on the run's `entities` belongs to a key a client sent, and was not refused.

    A hold whose client never got a definitive answer (gave up on network errors or 503s, or was
    stopped mid-request) may or may not be stored: that is counted in the note, not a failure."""
    by_hold = {c.hold_id: c for c in clients}
    problems: list[str] = []
    unanswered = 0
    checked = 0
    for hold in stored:
        if hold.entity not in entities:
            continue
        checked += 1
        client = by_hold.get(hold.hold_id)
        if client is None:
            problems.append(f"hold {hold.hold_id} on {hold.entity} is stored, but no client sent its key")
        elif client.definitive_refusal:
            problems.append(f"hold {hold.hold_id} is stored although the client was answered {client.status}")
        elif not client.acked:
            unanswered += 1
    note = f"{unanswered} stored for clients that gave up before an answer" if unanswered else ""
    return Check(UNACKNOWLEDGED, checked, tuple(problems), note)


def check_idempotency(clients: Sequence[ClientHold], stored: Sequence[StoredHold]) -> Check:
    """Every 201 for a key names the hold that key derives; no hold belongs to two keys; a hold is stored once."""
    problems: list[str] = []
    owners: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for client in clients:
        owners[client.hold_id].add((client.customer, client.entity, client.key))
        for acked in set(client.acked):
            if acked != client.hold_id:
                problems.append(f"key {client.key} of {client.customer} was answered with hold {acked}")
    for hold_id, keys in owners.items():
        if len(keys) > 1:
            problems.append(f"hold {hold_id} belongs to {len(keys)} keys")
    for hold_id, count in Counter(h.hold_id for h in stored).items():
        if count > 1:
            problems.append(f"hold {hold_id} is stored {count} times")
    retried = sum(1 for c in clients if len(c.acked) > 1)
    note = f"{retried} keys answered 201 more than once (retries), each with its one hold" if retried else ""
    return Check(IDEMPOTENCY, len(clients), tuple(problems), note)


def check_tiers(replay: InventoryReplay) -> Check:
    return Check(TIERS, len(replay.tiers), tuple(replay.tier_problems))


def check_rentals(replay: InventoryReplay) -> Check:
    return Check(RENTALS, replay.cars_checked, tuple(replay.overlaps))


def check_lifetimes(replay: InventoryReplay, now_ms: int, grace_ms: int) -> Check:
    """Every booking is CONFIRMED or ended, or still HELD before its expiry (+ grace, for the
    expiry timer and sweep); and every status change was a valid transition."""
    expiry = {h.hold_id: h.expires_at for h in replay.stored}
    problems = list(replay.transition_problems)
    still_held = 0
    for hold_id, status in replay.status.items():
        if status != HELD:
            continue
        still_held += 1
        if expiry[hold_id] + grace_ms < now_ms:
            problems.append(f"hold {hold_id} is HELD {(now_ms - expiry[hold_id]) / 1000:.0f} s after its expiry")
    note = f"{still_held} still HELD inside their time-to-live" if still_held else ""
    return Check(LIFETIMES, len(replay.status), tuple(problems), note)


def check_balances(money: MoneyAudit, reported: Mapping[str, int] | None) -> Check:
    """The ledger adds up; when the system reports balances, each equals deposits - charges + refunds."""
    problems = list(money.other_problems)
    if reported is not None:
        problems += balance_mismatches(money, reported)
    note = "" if reported is not None else "no reported balances to compare"
    return Check(BALANCES, len(money.books), tuple(problems), note)


def check_charges(money: MoneyAudit) -> Check:
    charges = sum(len(b.charges) for b in money.books.values())
    return Check(CHARGES, charges, tuple(money.double_charges + money.refund_problems))


def check_paid(
    money: MoneyAudit,
    stored: Sequence[StoredHold],
    status: Mapping[str, str],
    ended_at: Mapping[str, int],
    decisions: Iterable[Decision],
    manual: set[str],
    now_ms: int,
    grace_ms: int,
) -> Check:
    """Money and bookings agree: a CONFIRMED booking (not confirmed by hand) is charged its amount
    to its customer and not refunded; every charge is for a stored booking of that customer and
    amount; a decided success was charged; an ended booking's charge is refunded (a refund younger
    than `grace_ms` may still be on its way: counted in the note)."""
    holds = {h.hold_id: h for h in stored}
    problems: list[str] = []
    pending = 0
    for wallet, book in money.books.items():
        for saga, amount in book.charges.items():
            hold = holds.get(saga)
            if hold is None:
                problems.append(f"wallet {wallet} charged {amount} for {saga}, which is not a stored booking")
            elif (hold.customer, hold.amount) != (wallet, amount):
                problems.append(f"booking {saga} of {hold.customer} for {hold.amount}: charged {amount} to {wallet}")
    for hold_id, state in status.items():
        charge = money.charged(hold_id)
        refunded = money.refunded(hold_id)
        if state == CONFIRMED and hold_id not in manual and (charge is None or refunded):
            problems.append(f"booking {hold_id} is CONFIRMED but {'refunded' if refunded else 'never charged'}")
        if state in ENDED and charge is not None and not refunded:
            if ended_at.get(hold_id, now_ms) + grace_ms < now_ms:
                problems.append(f"booking {hold_id} is {state} but its charge was never refunded")
            else:
                pending += 1
    for d in decisions:
        if d.status == SUCCEEDED and money.charged(d.saga_id) is None:
            problems.append(f"payment {d.saga_id} succeeded but no money left wallet {d.customer_id}")
    note = f"{pending} refunds of just-ended bookings still on their way" if pending else ""
    return Check(PAID, len(status), tuple(problems), note)


def check_read_model(expected: Mapping[str, Booking], actual: Mapping[str, Booking]) -> Check:
    problems: list[str] = []
    for hold_id in sorted(expected.keys() - actual.keys()):
        problems.append(f"booking {hold_id} is in the log but not in the read model")
    for hold_id in sorted(actual.keys() - expected.keys()):
        problems.append(f"booking {hold_id} is in the read model but not in the log")
    for hold_id in sorted(expected.keys() & actual.keys()):
        if expected[hold_id] != actual[hold_id]:
            diff = [
                f"{f.name}: {getattr(actual[hold_id], f.name)!r} (log: {getattr(expected[hold_id], f.name)!r})"
                for f in fields(Booking)
                if f.compare and getattr(expected[hold_id], f.name) != getattr(actual[hold_id], f.name)
            ]
            problems.append(f"booking {hold_id}: " + ", ".join(diff))
    return Check(READ_MODEL, len(expected), tuple(problems))


def check_statements(
    expected: Mapping[str, Sequence[Entry]],
    actual: Mapping[str, Sequence[Entry]],
    reported_balances: Mapping[str, int] | None = None,
) -> Check:
    """The ledger read model (the wallets' statements) holds exactly the entries a replay of the
    log gives, and, where the system reported a balance, a wallet's entries add up to it."""
    problems: list[str] = []
    for wallet in sorted(expected.keys() | actual.keys()):
        mine, theirs = list(actual.get(wallet, ())), list(expected.get(wallet, ()))
        if mine != theirs:
            problems.append(
                f"wallet {wallet}: the statement has {len(mine)} entries, the log gives {len(theirs)}"
                if len(mine) != len(theirs)
                else f"wallet {wallet}: the statement differs from the log"
            )
    for wallet, balance in sorted((reported_balances or {}).items()):
        entries = actual.get(wallet, ())
        total = sum(e.amount for e in entries)
        last = entries[-1].balance if entries else 0
        if total != balance or last != balance:
            problems.append(f"wallet {wallet}: balance {balance}, statement adds up to {total} (last entry {last})")
    return Check(STATEMENTS, len(expected), tuple(problems))
