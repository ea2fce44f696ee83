"""Which idempotency keys an entity may have archived: a time-bounded, scalable Bloom filter.

Entities (a hot concert event, a wallet) keep their bookings or payments in memory; settled ones
move out to an archive table. A new hold or payment arrives under a client-chosen idempotency key,
and the entity must know whether that key may have been used before (its record was archived)
without a database round trip for every new key. `KeyFilter.may_contain` answers False ("certainly
never archived": decide at once) or True ("maybe": the host looks the key up in the archive first).
A false positive costs one lookup; a false negative would let a retried hold book twice, so there
are none: a key is found for at least `lifetime_ms` (the idempotency lifetime) after its `add`.
After that it may be forgotten, which keeps memory bounded by the keys of the last one to two
lifetimes, at a few bytes each.

Two generations, `current` and `previous`, each with its start time. `add` first rotates when
the current one is a lifetime old: previous := current, current := a new empty generation starting
now (both are emptied if the current one is two lifetimes old). A key added at t is therefore
dropped only by a rotation more than a lifetime after t.

Each generation is a scalable Bloom filter: block i holds ``first_capacity * 2**i`` keys and is
sized for a false-positive rate of ``error_rate * 0.5**(i + 1)``, so the rate of a whole
generation stays under `error_rate`; a block is appended when the newest one is full, and a lookup
probes about ``log2(n / first_capacity)`` blocks. At the default 0.002 a full block takes 1.8 bytes
a key in the first block and 0.18 more in each later, tighter one: 2.4 bytes a key over a generation
of 127 thousand keys, 2.9 over a million. The newest block is allocated whole, so just after one is
appended a generation takes up to twice that. `may_contain` asks both generations, so with both
populated the rate of the whole filter approaches twice `error_rate`.

Keys are hashed once with a stable hash (BLAKE2b of their UTF-8, lone surrogates passed through;
not Python's per-process `hash`: the filter is saved in snapshots and read by other processes); a
block's k bit positions are derived from the two 64-bit halves by double hashing,
``(h1 + i * h2) mod m``.
"""

from __future__ import annotations

import math
import struct
from hashlib import blake2b

FORMAT = 1  # first byte of `to_bytes`; bump it when the encoding changes

_LN2 = math.log(2.0)
_MASK64 = (1 << 64) - 1
_HEADER = struct.Struct("<BQd")  # format, first_capacity, error_rate
_GENERATION = struct.Struct("<qB")  # started_ms, number of blocks
_BLOCK = struct.Struct("<QQB")  # keys added, m (bits, a multiple of 8), k; then m // 8 bytes of bits
_MAX_BLOCKS = 64


def _hash(key: str) -> int:
    """128 stable bits of `key`: two 64-bit halves for double hashing."""
    return int.from_bytes(blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest(), "little")


class _Block:
    """One fixed-size Bloom filter: `capacity` keys at its false-positive rate."""

    __slots__ = ("bits", "capacity", "count", "k", "m")

    def __init__(self, capacity: int, m: int, k: int, count: int, bits: bytearray) -> None:
        self.capacity = capacity
        self.m = m
        self.k = k
        self.count = count
        self.bits = bits

    @classmethod
    def sized(cls, capacity: int, rate: float) -> _Block:
        """An empty block for `capacity` keys at false-positive rate `rate` (the standard formulas)."""
        m = math.ceil(-capacity * math.log(rate) / (_LN2 * _LN2))
        m = (m + 7) // 8 * 8
        k = max(1, round(m / capacity * _LN2))
        return cls(capacity, m, k, 0, bytearray(m // 8))


class _Generation:
    """The keys added from `started_ms` on, until the next rotation."""

    __slots__ = ("blocks", "count", "started_ms")

    def __init__(self, started_ms: int, blocks: list[_Block] | None = None) -> None:
        self.started_ms = started_ms
        self.blocks: list[_Block] = blocks if blocks is not None else []
        self.count = sum(block.count for block in self.blocks)


class KeyFilter:
    """Answers "certainly not added within the last lifetime" or "maybe added" for string keys.

    `lifetime_ms` may be changed between calls (the host sets the configured lifetime); the
    sizing parameters are fixed at construction and kept in `to_bytes`.
    """

    __slots__ = ("_current", "_previous", "_probes", "error_rate", "first_capacity", "lifetime_ms")

    def __init__(self, lifetime_ms: int, first_capacity: int = 4096, error_rate: float = 0.002) -> None:
        if lifetime_ms <= 0:
            raise ValueError(f"lifetime_ms must be positive, not {lifetime_ms}")
        if first_capacity < 1:
            raise ValueError(f"first_capacity must be at least 1, not {first_capacity}")
        if not 0.0 < error_rate < 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, not {error_rate}")
        self.lifetime_ms = lifetime_ms
        self.first_capacity = first_capacity
        self.error_rate = error_rate
        self._current = _Generation(0)
        self._previous = _Generation(0)
        # (m, range(k - 1), bits) of every block of both generations, flat, for `may_contain`.
        self._probes: list[tuple[int, range, bytearray]] = []

    def add(self, key: str, now_ms: int) -> None:
        """Remember `key` for at least `lifetime_ms` from `now_ms`, rotating generations first if due."""
        current = self._current
        if now_ms - current.started_ms >= self.lifetime_ms:
            current = self._rotate(now_ms)
        elif not current.count:
            current.started_ms = now_ms  # nothing to keep yet: its lifetime starts with its first key
        blocks = current.blocks
        block = blocks[-1] if blocks else None
        if block is None or block.count >= block.capacity:
            block = self._grow(current)
        h = _hash(key)
        m = block.m
        bits = block.bits
        pos = (h & _MASK64) % m
        step = (h >> 64) % m
        for _ in range(block.k):
            bits[pos >> 3] |= 1 << (pos & 7)
            pos += step
            if pos >= m:
                pos -= m
        block.count += 1
        current.count += 1

    def may_contain(self, key: str) -> bool:
        """False if `key` was certainly not added within the last lifetime; True if it may have been."""
        probes = self._probes
        if not probes:
            return False
        h = _hash(key)
        h1 = h & _MASK64
        h2 = h >> 64
        for m, rest, bits in probes:
            pos = h1 % m
            if not bits[pos >> 3] & (1 << (pos & 7)):
                continue  # an absent key often stops at the first probe of each block
            step = h2 % m
            for _ in rest:
                pos += step
                if pos >= m:
                    pos -= m
                if not bits[pos >> 3] & (1 << (pos & 7)):
                    break
            else:
                return True
        return False

    def __len__(self) -> int:
        """How many `add` calls the kept generations hold (a key added twice counts twice)."""
        return self._current.count + self._previous.count

    def __bool__(self) -> bool:
        """True if any key is kept: a cheap guard before `may_contain` on a hot path."""
        return bool(self._probes)

    @property
    def nbytes(self) -> int:
        """Bytes of bit arrays held by both generations."""
        return sum(len(bits) for _, _, bits in self._probes)

    def to_bytes(self) -> bytes:
        """A compact encoding: a format byte, the sizing, then each generation's start and blocks."""
        parts = [_HEADER.pack(FORMAT, self.first_capacity, self.error_rate)]
        for generation in (self._current, self._previous):
            parts.append(_GENERATION.pack(generation.started_ms, len(generation.blocks)))
            for block in generation.blocks:
                parts.append(_BLOCK.pack(block.count, block.m, block.k))
                parts.append(bytes(block.bits))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, lifetime_ms: int) -> KeyFilter:
        """The filter `to_bytes` encoded; ValueError if `data` is not such an encoding."""
        try:
            return cls._decode(memoryview(data), lifetime_ms)
        except struct.error as e:
            raise ValueError(f"not an encoded KeyFilter: {e}") from None

    @classmethod
    def _decode(cls, data: memoryview, lifetime_ms: int) -> KeyFilter:
        fmt, first_capacity, error_rate = _HEADER.unpack_from(data, 0)
        if fmt != FORMAT:
            raise ValueError(f"unknown KeyFilter format {fmt}")
        filt = cls(lifetime_ms, first_capacity, error_rate)
        offset = _HEADER.size
        generations = []
        for _ in range(2):
            started_ms, nblocks = _GENERATION.unpack_from(data, offset)
            offset += _GENERATION.size
            if nblocks > _MAX_BLOCKS:
                raise ValueError(f"not an encoded KeyFilter: {nblocks} blocks")
            blocks = []
            for i in range(nblocks):
                count, m, k = _BLOCK.unpack_from(data, offset)
                offset += _BLOCK.size
                capacity = first_capacity << i
                size = m // 8
                if m == 0 or m % 8 or k == 0 or not 1 <= count <= capacity or offset + size > len(data):
                    raise ValueError(f"not an encoded KeyFilter: bad block {i} (m={m}, k={k}, count={count})")
                blocks.append(_Block(capacity, m, k, count, bytearray(data[offset : offset + size])))
                offset += size
            generations.append(_Generation(started_ms, blocks))
        if offset != len(data):
            raise ValueError(f"not an encoded KeyFilter: {len(data) - offset} bytes left over")
        filt._current, filt._previous = generations
        filt._reprobe()
        return filt

    def _rotate(self, now_ms: int) -> _Generation:
        if now_ms - self._current.started_ms >= 2 * self.lifetime_ms:
            self._previous = _Generation(now_ms)
        else:
            self._previous = self._current
        self._current = _Generation(now_ms)
        self._reprobe()
        return self._current

    def _grow(self, generation: _Generation) -> _Block:
        i = len(generation.blocks)
        block = _Block.sized(self.first_capacity << i, self.error_rate * 0.5 ** (i + 1))
        generation.blocks.append(block)
        self._reprobe()
        return block

    def _reprobe(self) -> None:
        # Biggest blocks first: they hold most of the keys, so a key that is there is found sooner.
        self._probes = [
            (block.m, range(block.k - 1), block.bits)
            for generation in (self._current, self._previous)
            for block in reversed(generation.blocks)
        ]
