"""What crosses the Ray boundary: msgpack bytes, never pydantic or pickled objects.

A request is the encoded list of commands of one batch; a reply is a list with, per command,
``(0, result)`` or ``(1, error code, message)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.domain import codec
from engine.domain.commands import Command
from engine.domain.errors import InvalidCommand, RezervError, error_from_code

OK = 0
ERROR = 1


def encode_batch(commands: Sequence[Command]) -> bytes:
    return codec.encode(list(commands))


def decode_batch(payload: bytes) -> list[Command]:
    try:
        commands = codec.decode(payload)
    except codec.CodecError as exc:
        raise InvalidCommand(f"undecodable batch: {exc}") from exc
    if not isinstance(commands, tuple) or not all(isinstance(c, Command) for c in commands):
        raise InvalidCommand("a batch is a list of commands")
    return list(commands)


def encode_replies(replies: Sequence[Any]) -> bytes:
    out: list[Any] = []
    for reply in replies:
        if isinstance(reply, RezervError):
            out.append((ERROR, reply.code, reply.message))
        else:
            out.append((OK, reply))
    return codec.encode(out)


def decode_replies(payload: bytes) -> list[Any]:
    """Results as objects, errors as RezervError instances (not raised)."""
    replies = []
    for item in codec.decode(payload):
        if item[0] == OK:
            replies.append(item[1])
        else:
            replies.append(error_from_code(item[1], item[2]))
    return replies
