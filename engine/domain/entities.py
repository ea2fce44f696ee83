"""Which aggregate class lives behind each kind of stream, and how snapshots are encoded."""

from __future__ import annotations

from typing import Any

from engine.domain import codec
from engine.domain.aggregate import Aggregate
from engine.domain.cars import RentalCar
from engine.domain.commands import KINDS, split_stream_id
from engine.domain.errors import InvalidCommand
from engine.domain.tickets import TicketedEvent
from engine.domain.wallet import Wallet

AGGREGATES: dict[str, type[Aggregate]] = {cls.KIND: cls for cls in (TicketedEvent, RentalCar, Wallet)}
assert set(AGGREGATES) == set(KINDS)


def aggregate_class(stream_id: str) -> tuple[type[Aggregate], str]:
    kind, entity_id = split_stream_id(stream_id)
    cls = AGGREGATES.get(kind)
    if cls is None or not entity_id:
        raise InvalidCommand(f"{stream_id!r} is not a stream of an event, car or wallet")
    return cls, entity_id


def new_aggregate(stream_id: str) -> Aggregate:
    cls, entity_id = aggregate_class(stream_id)
    return cls(entity_id)


def snapshot_body(agg: Aggregate, state: Any) -> tuple[int, Any]:
    """What a snapshot encodes: the aggregate's snapshot schema and `state`. The one place this
    shape is written, for `encode_snapshot` and for a snapshot encoded in pieces
    (engine/domain/snapshot_pieces.py), whose bytes must be the same."""
    return (agg.SNAPSHOT_SCHEMA, state)


def encode_snapshot(agg: Aggregate) -> bytes:
    return codec.encode(snapshot_body(agg, agg.to_state()))


def decode_snapshot(stream_id: str, version: int, data: bytes) -> Aggregate | None:
    """The aggregate from a snapshot, or None if the snapshot's schema is not this code's (replay instead)."""
    cls, entity_id = aggregate_class(stream_id)
    schema, state = codec.decode(data)
    if schema != cls.SNAPSHOT_SCHEMA:
        return None
    return cls.from_state(entity_id, version, state)


def state_of(agg: Aggregate) -> Any:
    return agg.to_state()
