"""Random histories of one wallet, made by the real aggregate from random commands: the events a
statement is built from, and the balance it must add up to (shared by the unit and SQL tests)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hypothesis import strategies as st

from engine.domain import codec
from engine.domain.commands import Deposit, Pay, Refund, Withdraw
from engine.domain.errors import DomainError
from engine.domain.wallet import Wallet
from engine.log import LoggedEvent

T = 1_800_000_000_000

command = st.one_of(
    st.builds(lambda i, a: Deposit("w", f"d{i}", a, "admin", "r"), st.integers(0, 6), st.integers(1, 1_000)),
    st.builds(lambda i, a: Pay("w", f"s{i}", "event/e1", a), st.integers(0, 6), st.integers(0, 1_500)),
    st.builds(lambda i: Refund("w", f"s{i}", "the hold expired"), st.integers(0, 6)),
    st.builds(
        lambda i, a, r: Withdraw("w", f"x{i}", a, reserved=r),
        st.integers(0, 6),
        st.integers(1, 900),
        st.integers(0, 200),
    ),
)


@dataclass
class History:
    wallet: Wallet
    events: list[LoggedEvent]  # the wallet's stream as the log reader would see it


def history(commands: list[object], wallet_id: str = "w", first_position: int = 1) -> History:
    """Run `commands` against a wallet (refusals skipped) and log its events in stream order."""
    wallet = Wallet(wallet_id)
    events: list[LoggedEvent] = []
    for i, cmd in enumerate(commands):
        with contextlib.suppress(DomainError):
            wallet.handle(_for(cmd, wallet_id), T + i)  # type: ignore[arg-type]
        for event in wallet.take_pending():
            name, data = codec.encode_named_record(event)
            n = len(events) + first_position
            events.append(LoggedEvent(f"wallet/{wallet_id}", len(events) + 1, name, data, n, n, T + i))
    return History(wallet, events)


def _for(cmd: object, wallet_id: str) -> object:
    """The command aimed at `wallet_id` (the strategies build them for "w")."""
    import dataclasses

    return dataclasses.replace(cmd, entity_id=wallet_id)  # type: ignore[type-var]
