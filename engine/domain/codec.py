"""msgpack codec for commands, events, results and snapshots, with type names and schema versions.

A registered frozen dataclass is written as ``[type name, schema version, field values...]``.
At the top level (a stored event, each item of a batch or of a reply) that array is written
as is: `encode_record` / `decode_record`, `encode_records` / `decode_records`. Anywhere else
(a dataclass inside a field, or inside a generic `encode`) it is wrapped in a msgpack
extension, and so are `date` values, so one ``decode`` call rebuilds the whole object. The
top level skips the extension because building one costs about 1 us, a cost paid per hold.
Sequences come back as tuples, which keeps decoded objects hashable and equal to the originals.

Why names and versions: events live forever in the store. When a class gains a field, bump its
``version`` and register an upcaster from the old version; old rows are upgraded as they are read.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import date
from operator import attrgetter
from typing import Any, TypeVar

import msgpack

from engine.domain.fast_init import speed_up_init

EXT_RECORD = 1
EXT_DATE = 2

T = TypeVar("T")
Upcaster = Callable[[list[Any]], list[Any]]


class CodecError(ValueError):
    """Bytes that do not decode to a registered type (unknown name, newer schema, wrong arity)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    cls: type[Any]
    name: str
    version: int
    fields: tuple[str, ...]
    upcasters: dict[int, Upcaster]
    head: tuple[str, int]  # (name, version), prepended to the field values
    values: Callable[[Any], tuple[Any, ...]]  # the field values, in order, in one C call


def _values_getter(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(fields) > 1:
        return attrgetter(*fields)
    if len(fields) == 1:
        one = attrgetter(fields[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


_BY_NAME: dict[str, _Entry] = {}
_BY_CLASS: dict[type[Any], _Entry] = {}


def register(name: str | None = None, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a frozen dataclass encodable under `name` at schema `version`."""

    def wrap(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be registered")
        type_name = name or cls.__name__
        if type_name in _BY_NAME and _BY_NAME[type_name].cls is not cls:
            raise TypeError(f"type name {type_name!r} is registered twice")
        names = tuple(f.name for f in dataclasses.fields(cls))
        entry = _Entry(cls, type_name, version, names, {}, (type_name, version), _values_getter(names))
        _BY_NAME[type_name] = entry
        _BY_CLASS[cls] = entry
        return speed_up_init(cls)

    return wrap


def upcaster(name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning the field list of `name` at `from_version` into the next version."""

    def wrap(fn: Upcaster) -> Upcaster:
        _BY_NAME[name].upcasters[from_version] = fn
        return fn

    return wrap


def record_head(cls: type) -> tuple[str, int]:
    """(type name, schema version) of a registered class. ``encode(head + values)``, with the
    field values in order, is what `encode_record` writes for an instance: for a hot path that
    has the values and need not build the object."""
    return _BY_CLASS[cls].head


def type_name(obj: object) -> str:
    return _BY_CLASS[type(obj)].name


def is_registered(cls: type[Any]) -> bool:
    return cls in _BY_CLASS


class _Packers(threading.local):
    """Packers reused across calls (building one costs more than packing a small record).

    One per nesting depth, because `default` runs while an outer packer is mid-pack, and one
    set per thread, because `default` is Python code and another thread may run meanwhile."""

    def __init__(self) -> None:
        self.top = msgpack.Packer(default=_default, use_bin_type=True)
        self.nested: list[msgpack.Packer] = []
        self.depth = 0


def _default(obj: Any) -> Any:
    entry = _BY_CLASS.get(type(obj))
    if entry is not None:
        state = _packers
        depth = state.depth
        if depth == len(state.nested):
            state.nested.append(msgpack.Packer(default=_default, use_bin_type=True))
        state.depth = depth + 1
        try:
            return msgpack.ExtType(EXT_RECORD, state.nested[depth].pack(entry.head + entry.values(obj)))
        finally:
            state.depth = depth
    if isinstance(obj, date):
        return msgpack.ExtType(EXT_DATE, obj.toordinal().to_bytes(4, "big"))
    if isinstance(obj, frozenset | set):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}: register it with engine.domain.codec.register")


_packers = _Packers()


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_RECORD:
        values = msgpack.unpackb(data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False)
        return _build(values)
    if code == EXT_DATE:
        return date.fromordinal(int.from_bytes(data, "big"))
    raise CodecError(f"unknown msgpack extension {code}")


def _build(values: tuple[Any, ...]) -> Any:
    name = values[0]
    entry = _BY_NAME.get(name)
    if entry is None:
        raise CodecError(f"unknown type {name!r}")
    version = values[1]
    if version == entry.version and len(values) == len(entry.fields) + 2:
        return entry.cls(*values[2:])
    if version > entry.version:
        raise CodecError(f"{name} schema {version} is newer than this code's {entry.version}")
    fields = list(values[2:])
    while version < entry.version:
        up = entry.upcasters.get(version)
        if up is None:
            raise CodecError(f"no upcaster for {name} from schema {version}")
        fields = up(fields)
        version += 1
    if len(fields) != len(entry.fields):
        raise CodecError(f"{name} schema {version} has {len(entry.fields)} fields, got {len(fields)}")
    return entry.cls(*fields)


def record_values(obj: Any) -> tuple[Any, ...]:
    """``(name, version, fields...)`` of a registered dataclass, for embedding in a larger message."""
    entry = _BY_CLASS[type(obj)]
    return entry.head + entry.values(obj)


def build_record(values: tuple[Any, ...]) -> Any:
    """The inverse of `record_values`."""
    return _build(values)


def build_record_at(values: tuple[Any, ...], start: int) -> Any:
    """`build_record(values[start:])` without copying the tuple first (replies: after the status)."""
    entry = _BY_NAME.get(values[start]) if len(values) > start + 1 else None
    if entry is not None and values[start + 1] == entry.version and len(values) == len(entry.fields) + start + 2:
        return entry.cls(*values[start + 2 :])
    return _build(values[start:])


def encode_record(obj: Any) -> bytes:
    """A registered dataclass as a flat ``[name, version, fields...]`` array."""
    entry = _BY_CLASS[type(obj)]
    return encode(entry.head + entry.values(obj))


def encode_named_record(obj: Any) -> tuple[str, bytes]:
    """(type name, `encode_record(obj)`), with one registry lookup: what the event store stores."""
    entry = _BY_CLASS[type(obj)]
    return entry.name, encode(entry.head + entry.values(obj))


def decode_record(data: bytes) -> Any:
    values = decode(data)
    if not isinstance(values, tuple) or len(values) < 2:
        raise CodecError("not a record")
    return _build(values)


def encode_records(objs: Any) -> bytes:
    """A list of registered dataclasses, each a flat array (a batch of commands, say)."""
    by_class = _BY_CLASS
    return encode([by_class[type(o)].head + by_class[type(o)].values(o) for o in objs])


def decode_records(data: bytes) -> list[Any]:
    items = decode(data)
    if not isinstance(items, tuple):
        raise CodecError("not a list of records")
    try:
        return [_build(item) for item in items]
    except (TypeError, IndexError, KeyError) as exc:
        raise CodecError(f"malformed record: {exc}") from exc


def encode(obj: Any) -> bytes:
    try:
        return _packers.top.pack(obj)  # type: ignore[no-any-return]
    except BaseException:
        _packers.top.reset()  # a failed pack must not leave bytes behind for the next call
        _packers.depth = 0
        raise


def array_header(length: int) -> bytes:
    """The bytes msgpack puts before the items of an array of `length` items."""
    return _packers.top.pack_array_header(length)  # type: ignore[no-any-return]


def encode_items(items: list[Any]) -> bytes:
    """`items` encoded one after another, with no array header: a piece of a longer array's body.
    An array is its header followed by its items, so `array_header(n)` and pieces holding n items
    in all, joined, are `encode` of those items as one array."""
    return encode(items)[len(array_header(len(items))) :]


def encode_around(obj: Any, hole: object) -> tuple[bytes, bytes] | None:
    """`encode(obj)` cut in two where `hole` sits (found by identity, inside nested tuples): what
    comes before it and what comes after. None if `hole` is not there. `before + encode(x) + after`
    is `encode` of `obj` with `x` in place of the hole."""
    if obj is hole:
        return b"", b""
    if type(obj) is not tuple:
        return None
    for index, item in enumerate(obj):
        cut = encode_around(item, hole)
        if cut is not None:
            head = array_header(len(obj)) + b"".join(encode(x) for x in obj[:index])
            tail = b"".join(encode(x) for x in obj[index + 1 :])
            return head + cut[0], cut[1] + tail
    return None


def decode(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"undecodable payload: {exc}") from exc
