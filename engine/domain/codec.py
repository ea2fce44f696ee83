"""msgpack codec for commands, events, results and snapshots, with type names and schema versions.

A registered frozen dataclass is written as a msgpack extension holding
``[type name, schema version, field values...]``; nested registered dataclasses and `date`
values are extensions too, so one ``decode`` call rebuilds the whole object. Sequences come back
as tuples, which keeps decoded objects hashable and equal to the ones that were encoded.

Why names and versions: events live forever in the store. When a class gains a field, bump its
``version`` and register an upcaster from the old version; old rows are upgraded as they are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import msgpack

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
        entry = _Entry(cls, type_name, version, tuple(f.name for f in dataclasses.fields(cls)), {})
        _BY_NAME[type_name] = entry
        _BY_CLASS[cls] = entry
        return cls

    return wrap


def upcaster(name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning the field list of `name` at `from_version` into the next version."""

    def wrap(fn: Upcaster) -> Upcaster:
        _BY_NAME[name].upcasters[from_version] = fn
        return fn

    return wrap


def type_name(obj: object) -> str:
    return _BY_CLASS[type(obj)].name


def is_registered(cls: type[Any]) -> bool:
    return cls in _BY_CLASS


def _default(obj: Any) -> Any:
    entry = _BY_CLASS.get(type(obj))
    if entry is not None:
        values = [entry.name, entry.version]
        values.extend(getattr(obj, f) for f in entry.fields)
        return msgpack.ExtType(EXT_RECORD, msgpack.packb(values, default=_default, use_bin_type=True))
    if isinstance(obj, date):
        return msgpack.ExtType(EXT_DATE, obj.toordinal().to_bytes(4, "big"))
    if isinstance(obj, frozenset | set):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}: register it with engine.domain.codec.register")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_RECORD:
        values = msgpack.unpackb(data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False)
        return _build(values)
    if code == EXT_DATE:
        return date.fromordinal(int.from_bytes(data, "big"))
    raise CodecError(f"unknown msgpack extension {code}")


def _build(values: tuple[Any, ...]) -> Any:
    name, version, *fields = values
    entry = _BY_NAME.get(name)
    if entry is None:
        raise CodecError(f"unknown type {name!r}")
    if version > entry.version:
        raise CodecError(f"{name} schema {version} is newer than this code's {entry.version}")
    while version < entry.version:
        up = entry.upcasters.get(version)
        if up is None:
            raise CodecError(f"no upcaster for {name} from schema {version}")
        fields = up(list(fields))
        version += 1
    if len(fields) != len(entry.fields):
        raise CodecError(f"{name} schema {version} has {len(entry.fields)} fields, got {len(fields)}")
    return entry.cls(*fields)


def encode(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"undecodable payload: {exc}") from exc
