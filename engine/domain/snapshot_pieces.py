"""A snapshot of an entity with many bookings, encoded a piece at a time.

Why: the snapshot of a hot event holds every booking still in memory (those settled less than
`archive_after_s` ago: about 100,000 at 1,800 bookings a second). Encoded at once it stopped the
hot shard's event loop for about 250 ms under load (BENCHMARKS.md, "the hot shard's stalls on a
filled stack", 2026-12-05), and every hold in flight waited that long: enough to set the hold p99
at 256 users. In pieces, the loop answers calls between them, and no wait is longer than one
piece.

Why the pieces are exact: taking the snapshot copies the list of records (not the records) and
encodes the rest of the state at once, at the snapshot's version. Until the last piece is
encoded, the entity keeps each record it changes as it was before its first change
(`BookingHost.pre_images`), and a piece encodes that instead of the record's present state.
Records added later are not in the list; records dropped later (archived, forgotten) are still
in it, unchanged. An array in msgpack is its length followed by its items, so the pieces joined
are byte for byte what `encode_snapshot` returned at that version (the store joins them, or sends
them one by one: `EventStore.save_snapshot_in_parts`). The property tests of the
tickets and the cars hold the two together (tests/unit/domain/test_properties.py: snapshots in
pieces begun at random steps, their pieces encoded between commands, archiving and restores).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from engine.domain import codec
from engine.domain.aggregate import Aggregate, BookingHost, BookingRecord
from engine.domain.entities import snapshot_body

_BOOKINGS = object()  # where the bookings go in the state, while the rest is encoded


class SnapshotInPieces:
    """One snapshot of `agg` at its present version; `encode_next` until it returns True, then
    `finish` for its pieces. Between calls the entity may run commands. `release` (also called by `finish`) ends
    the keeping of records as they were; call it if the snapshot is given up."""

    def __init__(self, agg: BookingHost) -> None:
        if agg.pre_images is not None:
            raise RuntimeError(f"a snapshot of {agg.stream_id} is already being encoded")
        self.version = agg.version
        self._agg = agg
        self._records: list[BookingRecord] = list(agg.bookings.values())
        cut = codec.encode_around(snapshot_body(agg, agg.state_around(_BOOKINGS)), _BOOKINGS)
        if cut is None:
            raise RuntimeError(f"{type(agg).__name__}.state_around left out the bookings")
        self._before, self._after = cut
        self._pieces: list[bytes] = [self._before, codec.array_header(len(self._records))]
        self._done = 0
        self._pre_images: dict[int, tuple[Any, ...]] = {}
        agg.pre_images = self._pre_images

    def encode_next(self, count: int) -> bool:
        """Encode the next `count` bookings as they were at the snapshot's version; True when
        every booking is encoded."""
        pre_images = self._pre_images
        if self._agg.pre_images is not pre_images:
            raise RuntimeError("this snapshot was released")
        chunk = self._records[self._done : self._done + count]
        self._pieces.append(codec.encode_items([pre_images.get(id(rec)) or rec.as_tuple() for rec in chunk]))
        self._done += len(chunk)
        return self._done >= len(self._records)

    def finish(self) -> list[bytes]:
        """The snapshot's bytes in pieces, in order (every booking must be encoded). They are
        handed to the store unjoined: joining the hot event's took 35 ms in one step of the loop."""
        if self._done < len(self._records):
            raise RuntimeError(f"{len(self._records) - self._done} bookings are not encoded yet")
        self.release()
        return [*self._pieces, self._after]

    def release(self) -> None:
        """Stop keeping records as they were for this snapshot (idempotent; leaves a later
        snapshot's alone)."""
        if self._agg.pre_images is self._pre_images:
            self._agg.pre_images = None


def in_pieces(agg: Aggregate, smallest: int) -> TypeGuard[BookingHost]:
    """Whether `agg`'s snapshot is worth encoding in pieces: it holds more than `smallest` bookings."""
    return isinstance(agg, BookingHost) and len(agg.bookings) > smallest
