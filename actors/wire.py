"""What crosses the Ray boundary: msgpack bytes, never pydantic or pickled objects.

A request is the list of commands of one batch, each a flat record (engine/domain/codec.py); a
reply is a list with, per command, ``(0, name, version, fields...)`` for a result or
``(1, error code, message)`` for an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.domain import codec
from engine.domain.commands import Command
from engine.domain.errors import InvalidCommand, RezervError, error_from_code
from engine.domain.results import Reply

OK = 0
ERROR = 1


def encode_batch(commands: Sequence[Command]) -> bytes:
    return codec.encode_records(commands)


def decode_batch(payload: bytes) -> list[Command]:
    try:
        commands = codec.decode_records(payload)
    except codec.CodecError as exc:
        raise InvalidCommand(f"undecodable batch: {exc}") from exc
    if not all(isinstance(c, Command) for c in commands):
        raise InvalidCommand("a batch is a list of commands")
    return commands


def encode_replies(replies: Sequence[Reply]) -> bytes:
    out: list[Any] = []
    head = (OK,)
    for reply in replies:
        if isinstance(reply, RezervError):
            out.append((ERROR, reply.code, reply.message))
        else:
            out.append(head + codec.record_values(reply))
    return codec.encode(out)


def decode_replies(payload: bytes) -> list[Reply]:
    """Results as objects, errors as RezervError instances (not raised)."""
    build = codec.build_record_at
    return [build(item, 1) if item[0] == OK else error_from_code(item[1], item[2]) for item in codec.decode(payload)]
