"""The ledger read model: every movement of money in a wallet, with the balance after it.

Why a read model: the wallet (engine/domain/wallet.py) keeps what it needs to decide (its
balance, which sagas it charged) and not its history in a form a customer can page through.
The statement (`GET /wallets/{id}/statement`) needs every deposit, charge, refund and withdrawal
with its reference and the running balance, newest first, so a projection writes them as rows
of `ledger_entries` (engine/migrations/0030_ledger.sql), keyed by the event's place in its wallet
stream (wallet id, version). Because the balance of each entry is the previous entry's plus its
amount, and the wallet's balance is the sum of the same events, the entries of a wallet always
add up to its balance (as of the last event projected): a property the tests and the load test's
audit check.

Pure, no I/O: `plan` turns a batch of the log into `Movement`s (skipping every other event
type without decoding it), `entries` gives them their running balances from each wallet's last
known balance, `fold` is the whole table from the whole log (the reference the SQL is tested
against). The adapter is engine/adapters/pg_ledger.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.domain import codec
from engine.domain.commands import WALLET
from engine.domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    PaymentRefunded,
    PaymentSucceeded,
    WalletCharged,
    WalletRefunded,
)
from engine.log import LoggedEvent

PROJECTION_NAME = "ledger-projection"
"""The projection's checkpoint name in `log_checkpoints`."""

DEPOSIT = "deposit"
CHARGE = "charge"
REFUND = "refund"
WITHDRAWAL = "withdrawal"

EVENT_TYPES = frozenset(
    cls.__name__
    for cls in (FundsDeposited, PaymentSucceeded, PaymentRefunded, FundsWithdrawn, WalletCharged, WalletRefunded)
)
"""The stored event types that move money (PaymentFailed moves none); the projection reads only these."""

_WALLET_PREFIX = WALLET + "/"


@dataclass(frozen=True, slots=True)
class Movement:
    """Money in (amount > 0) or out (amount < 0) of one wallet, at `version` of its stream."""

    wallet_id: str
    version: int
    kind: str  # DEPOSIT, CHARGE, REFUND or WITHDRAWAL
    reference: str  # the deposit id, the saga id (= hold id) or the withdrawal id
    amount: int
    at: int
    detail: str = ""  # where a deposit came from and why; why a refund was made


@dataclass(frozen=True, slots=True)
class Entry:
    """A row of `ledger_entries`: a movement and the wallet's balance after it."""

    wallet_id: str
    version: int
    kind: str
    reference: str
    amount: int
    balance: int
    at: int
    detail: str = ""


def _deposit_detail(event: FundsDeposited) -> str:
    return ": ".join(part for part in (event.source, event.reason) if part)


def movement(stream_id: str, version: int, event: object) -> Movement | None:
    """The money `event` moved in its wallet stream; None for any other event or stream."""
    if not stream_id.startswith(_WALLET_PREFIX):
        return None
    wallet = stream_id[len(_WALLET_PREFIX) :]
    if isinstance(event, FundsDeposited):
        return Movement(wallet, version, DEPOSIT, event.deposit_id, event.amount, event.at, _deposit_detail(event))
    if isinstance(event, PaymentSucceeded | WalletCharged):
        return Movement(wallet, version, CHARGE, event.saga_id, -event.amount, event.at)
    if isinstance(event, PaymentRefunded | WalletRefunded):
        return Movement(wallet, version, REFUND, event.saga_id, event.amount, event.at, event.reason)
    if isinstance(event, FundsWithdrawn):
        return Movement(wallet, version, WITHDRAWAL, event.withdrawal_id, -event.amount, event.at)
    return None


def plan(events: Sequence[LoggedEvent]) -> list[Movement]:
    """The movements of a batch of the log, in log order (per wallet: in stream order).

    An event of a money type that does not decode raises codec.CodecError, as in the bookings
    projection: stopping (visible as lag) is better than a statement that is wrong forever."""
    out: list[Movement] = []
    for logged in events:
        if logged.event_type not in EVENT_TYPES:
            continue
        moved = movement(logged.stream_id, logged.version, codec.decode_record(logged.data))
        if moved is not None:
            out.append(moved)
    return out


def entries(movements: Iterable[Movement], balances: Mapping[str, int]) -> list[Entry]:
    """The entries of `movements` (in log order), each wallet's running balance starting from
    `balances` (its last entry's balance; 0 for a wallet with none)."""
    running = dict(balances)
    out: list[Entry] = []
    for m in movements:
        balance = running.get(m.wallet_id, 0) + m.amount
        running[m.wallet_id] = balance
        out.append(Entry(m.wallet_id, m.version, m.kind, m.reference, m.amount, balance, m.at, m.detail))
    return out


def fold(movements: Iterable[Movement]) -> dict[str, list[Entry]]:
    """Every wallet's entries, oldest first, from the whole log: what the table must hold."""
    table: dict[str, list[Entry]] = {}
    for entry in entries(movements, {}):
        table.setdefault(entry.wallet_id, []).append(entry)
    return table
