"""The msgpack codec: every registered type round-trips; bad bytes fail clearly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import msgpack
import pytest

from engine.domain import codec
from engine.domain.commands import CreateEvent, HoldCar, HoldTickets, TierSpec
from engine.domain.events import BookingCancelled, BookingConfirmed, CarHeld, HoldExpired, HoldReleased, TicketsHeld
from engine.domain.results import Done, HoldGranted


@pytest.mark.parametrize(
    "obj",
    [
        HoldTickets("e1", "h1", "alice", (("std", 2), ("vip", 1)), 60_000),
        CreateEvent("e1", "T", "V", "2027-01-01T00:00:00+00:00", (TierSpec("std", 100, 5),), 4),
        HoldCar("c1", "h1", "bob", date(2027, 1, 1), date(2027, 1, 3), 1000),
        TicketsHeld("e1", "h1", "alice", (("std", 2),), 200, 1000, 2000, 1000),
        CarHeld("c1", "h1", "bob", date(2027, 1, 1), date(2027, 1, 3), 300, 10, 20, 10),
        HoldGranted("e1", "h1", "alice", 200, 2000, 2),
        [HoldGranted("e1", "h1", "a", 1, 2, 3), (1, "x", None, b"raw")],
    ],
)
def test_round_trip(obj: object) -> None:
    decoded = codec.decode(codec.encode(obj))
    if isinstance(obj, list):
        assert list(decoded) == [obj[0], obj[1]]
    else:
        assert decoded == obj
        assert type(decoded) is type(obj)


def test_unknown_type_name_is_rejected() -> None:
    payload = msgpack.packb(msgpack.ExtType(codec.EXT_RECORD, msgpack.packb(["NoSuchThing", 1, "x"])))
    with pytest.raises(codec.CodecError, match="unknown type 'NoSuchThing'"):
        codec.decode(payload)


def test_a_newer_schema_is_rejected() -> None:
    payload = msgpack.packb(msgpack.ExtType(codec.EXT_RECORD, msgpack.packb(["TierSpec", 99, "std", 1, 2])))
    with pytest.raises(codec.CodecError, match="newer"):
        codec.decode(payload)


def test_wrong_arity_is_rejected() -> None:
    payload = msgpack.packb(msgpack.ExtType(codec.EXT_RECORD, msgpack.packb(["TierSpec", 1, "std"])))
    with pytest.raises(codec.CodecError, match="fields"):
        codec.decode(payload)


def test_garbage_is_a_codec_error() -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(b"\xc1\xc1")


def test_unregistered_objects_cannot_be_encoded() -> None:
    class Loose:
        pass

    with pytest.raises(TypeError, match="register it"):
        codec.encode(Loose())


def test_upcaster_upgrades_old_rows() -> None:
    @codec.register("Versioned", version=2)
    @dataclass(frozen=True)
    class Versioned:
        a: int
        b: str

    @codec.upcaster("Versioned", 1)
    def _v1_to_v2(fields: list[object]) -> list[object]:
        return [*fields, "default-b"]

    old = msgpack.packb(msgpack.ExtType(codec.EXT_RECORD, msgpack.packb(["Versioned", 1, 7])))
    assert codec.decode(old) == Versioned(7, "default-b")


def test_a_done_of_schema_1_reads_as_one_that_gives_no_reason() -> None:
    old = msgpack.packb(msgpack.ExtType(codec.EXT_RECORD, msgpack.packb(["Done", 1, "w1", "s1", "FAILED", 5, True])))
    assert codec.decode(old) == Done("w1", "s1", "FAILED", 5, True, reason="")


def test_a_hold_of_schema_1_reads_as_one_whose_ends_may_not_carry_its_quantities() -> None:
    old = msgpack.packb(["TicketsHeld", 1, "e1", "h1", "alice", [["std", 2]], 200, 1000, 2000, 1000])
    held = codec.decode_record(old)
    assert held == TicketsHeld("e1", "h1", "alice", (("std", 2),), 200, 1000, 2000, 1000, ends_carry_quantities=False)
    assert TicketsHeld("e1", "h1", "alice", (("std", 2),), 200, 1000, 2000, 1000).ends_carry_quantities


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            ["BookingConfirmed", 3, "e1", "h1", "pay", 5, "alice", 200],
            BookingConfirmed("e1", "h1", "pay", 5, "alice", 200),
        ),
        (["HoldReleased", 2, "e1", "h1", "r", 5, "alice"], HoldReleased("e1", "h1", "r", 5, "alice")),
        (["HoldExpired", 2, "e1", "h1", 5, "alice"], HoldExpired("e1", "h1", 5, "alice")),
        (["BookingCancelled", 2, "e1", "h1", "c", 5, "alice"], BookingCancelled("e1", "h1", "c", 5, "alice")),
    ],
)
def test_the_end_of_a_hold_recorded_before_quantities_reads_with_none(old: list[object], new: object) -> None:
    decoded = codec.decode_record(msgpack.packb(old))
    assert decoded == new
    assert decoded.quantities is None  # type: ignore[attr-defined]


def test_a_failed_encode_leaves_the_codec_clean() -> None:
    class Loose:
        pass

    good = HoldGranted("e1", "h1", "alice", 200, 2000, 2)
    with pytest.raises(TypeError):
        codec.encode([good, Loose()])
    assert codec.decode(codec.encode(good)) == good


def test_encoding_is_thread_safe() -> None:
    import threading

    items = [HoldTickets("e1", f"h{i}", "c", (("std", i % 5 + 1),), 1000 + i) for i in range(2000)]
    failures: list[int] = []

    def worker() -> None:
        for item in items:
            if codec.decode(codec.encode([item, (item, TierSpec("x", 1, 2))])) != (item, (item, TierSpec("x", 1, 2))):
                failures.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_flat_records_round_trip_with_nested_records_and_dates() -> None:
    create = CreateEvent("e1", "T", "V", "x", (TierSpec("std", 100, 5), TierSpec("vip", 500, 1)), 4)
    car = HoldCar("c1", "h1", "bob", date(2027, 1, 1), date(2027, 1, 3), 1000)
    assert codec.decode_record(codec.encode_record(create)) == create
    assert codec.decode_records(codec.encode_records([create, car])) == [create, car]
    assert codec.build_record(codec.record_values(car)) == car


def test_a_malformed_flat_record_is_a_codec_error() -> None:
    with pytest.raises(codec.CodecError):
        codec.decode_record(codec.encode("just a string"))
    with pytest.raises(codec.CodecError):
        codec.decode_records(codec.encode([("HoldTickets",)]))


def test_an_array_encoded_in_pieces_around_the_rest_is_the_array_encoded_at_once() -> None:
    hole = object()
    items = [("h1", 2, (("std", 1),)), ("h2", 3, ()), ("h3", 4, (("vip", 2),))]
    cut = codec.encode_around((3, ("title", (("std", 5000),), hole, b"\x00\x01", True)), hole)
    assert cut is not None
    before, after = cut
    pieces = before + codec.array_header(3) + codec.encode_items(items[:2]) + codec.encode_items(items[2:]) + after
    assert pieces == codec.encode((3, ("title", (("std", 5000),), tuple(items), b"\x00\x01", True)))


def test_encode_around_says_none_when_the_hole_is_not_there() -> None:
    assert codec.encode_around((1, (2, 3)), object()) is None
