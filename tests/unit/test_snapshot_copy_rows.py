"""The row a snapshot sent in parts is copied as (engine/adapters/pg_event_store.py): COPY's
binary format, read back here field by field, and a pass of the event loop after each part."""

from __future__ import annotations

import struct
from itertools import pairwise

from engine.adapters.pg_event_store import snapshot_copy_rows
from tests.loop_passes import counting_loop_turns


def read_copy(stream: bytes) -> list[tuple[bytes, ...]]:
    """The rows of a binary COPY stream, each field's bytes as sent."""
    assert stream[:11] == b"PGCOPY\n\xff\r\n\x00"
    flags, extension = struct.unpack_from("!ii", stream, 11)
    assert (flags, extension) == (0, 0)
    at, rows = 19, list[tuple[bytes, ...]]()
    while True:
        (fields,) = struct.unpack_from("!h", stream, at)
        at += 2
        if fields == -1:
            assert at == len(stream), "bytes after the end of the rows"
            return rows
        row = []
        for _ in range(fields):
            (size,) = struct.unpack_from("!i", stream, at)
            row.append(stream[at + 4 : at + 4 + size])
            at += 4 + size
        rows.append(tuple(row))


async def collect(parts: list[bytes]) -> list[bytes]:
    return [chunk async for chunk in snapshot_copy_rows("event/é1", 70_000, parts)]


async def test_the_copy_holds_one_row_of_the_stream_its_version_and_the_parts_joined() -> None:
    parts = [b"\x84\xa5tiers", b"", b"\xdd\x00\x00\x00\x02", b"\x01" * 70_000, b"\x02", b"tail"]
    [row] = read_copy(b"".join(await collect(parts)))
    assert row == ("event/é1".encode(), struct.pack("!i", 70_000), b"".join(parts))


async def test_each_part_is_a_chunk_of_its_own_and_empty_ones_are_left_out() -> None:
    parts = [b"a", b"", b"bc", b"d"]
    chunks = await collect(parts)
    assert chunks[1:-1] == [b"a", b"bc", b"d"]


async def test_the_event_loop_runs_other_tasks_between_the_parts() -> None:
    async with counting_loop_turns() as turns:
        seen = [turns() async for _ in snapshot_copy_rows("event/e", 3, [b"x"] * 5)]
    parts_seen = seen[1:-1]
    assert all(a < b for a, b in pairwise(parts_seen)), f"no other task ran between parts: {seen}"
