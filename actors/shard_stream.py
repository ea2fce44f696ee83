"""A shard's direct channel: its batches over a Unix socket instead of a Ray call.

Ray places the shards, restarts them and tells callers where they are; it does not have to
carry every batch. A Ray call to an async actor crosses seven threads (the caller's loop, its
core worker, gRPC, the actor's core worker and its loop, and back), which on a busy two-core
machine cost about 5.5 ms of a 15 ms hold at 16 users (BENCHMARKS.md section 3, spans of
`REZERV_TRACE_SAMPLE`) and 1.1-4 ms of CPU per call, caller and actor together, the most when
calls are spaced out as they are at moderate load (`rezerv bench ray-calls`). Over a Unix socket
the same batch goes from the caller's event loop to the shard's event loop and back: at 16-64
Locust users the API's and the shards' CPU per booking fell by 20-45% (BENCHMARKS.md section 3).

What stays the same: the payload (msgpack batches and replies, actors/wire.py), the shard's
`ShardActor.call` semantics, and what a caller does when a channel breaks (a batch in flight
when its connection drops is "may or may not have been executed", retried with its commands'
idempotency keys; actors/client.py). A caller on another node than its shard keeps using Ray
calls: the socket is local to the shard's node.

The socket is in Linux's abstract namespace (no file to leave behind when a shard is killed),
which any local process could open; so a connection's first frame must carry the shard's
secret, which a caller learns only through Ray (`ShardActor.channel`), and a wrong one closes
it. Elsewhere the socket is a file in a directory only this user can open.

Frames, both ways: a header (payload length, request id, flags) then the payload. A request's
flag TRACED asks for the batch's stages; the answer then carries (replies, stages) as msgpack.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
import struct
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

log = logging.getLogger("rezerv.shard_stream")

HEADER = struct.Struct("!IQB")  # payload length, request id, flags
TRACED = 1
HELLO = 2  # a connection's first frame: its payload is the shard's secret
MAX_FRAME = 64 * 1024 * 1024  # a batch of 256 holds is a few tens of kilobytes
WRITE_BUFFER_HIGH = 1 << 20  # past this many unsent bytes a writer waits for the socket

Apply = Callable[[bytes, bool], Awaitable[Any]]
"""The shard's batch function: (payload, traced) -> replies, or (replies, stages) when traced."""


class FrameError(ConnectionError):
    """A frame that cannot be read: the connection is closed, as if it had dropped."""


def frame(request_id: int, flags: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), request_id, flags) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(request id, flags, payload); asyncio.IncompleteReadError at a clean end of stream."""
    length, request_id, flags = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes (at most {MAX_FRAME})")
    return request_id, flags, await reader.readexactly(length)


def encode_answer(answer: Any) -> tuple[int, bytes]:
    """The shard's answer as (flags, payload): replies alone, or replies with their stages."""
    if isinstance(answer, tuple):
        return TRACED, msgpack.packb([answer[0], answer[1]], use_bin_type=True)
    return 0, answer


def decode_answer(flags: int, payload: bytes) -> Any:
    if flags & TRACED:
        replies, stages = msgpack.unpackb(payload, raw=False)
        return replies, stages
    return payload


def node_id() -> str:
    """The Ray node this process runs on ("" outside Ray): a caller uses a shard's socket only
    when both are on the same node."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""
    except Exception:  # pragma: no cover - Ray missing or not connected
        return ""


def socket_address() -> tuple[str, str]:
    """(address, directory to remove afterwards) for a new shard socket: an abstract name on
    Linux; elsewhere a file in a new directory of mode 0700 in the system's temporary directory
    (a Unix socket's path must be shorter than 108 bytes, which a data directory may not be)."""
    if sys.platform.startswith("linux"):
        return f"\0rezerv-shard-{uuid.uuid4().hex}", ""
    directory = tempfile.mkdtemp(prefix="rezerv-shard-")
    return os.path.join(directory, "shard.sock"), directory


async def connected_socket(path: str) -> socket.socket:
    """A Unix socket connected to `path`, abstract names included. The socket is made here
    because uvloop's `open_unix_connection(path)` refuses an abstract name (EINVAL) where
    asyncio's accepts it; connecting the socket first works on both loops."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, path)
    except BaseException:
        sock.close()
        raise
    return sock


class StreamServer:
    """The shard side: every frame read becomes a task that applies its batch and writes the
    answer, so batches from one connection overlap as Ray calls to the actor do."""

    def __init__(self, apply: Apply) -> None:
        self._apply = apply
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._directory = ""
        self.path = ""
        self.secret = secrets.token_hex(16)
        self.connections = 0
        self.refused = 0
        self.frames = 0

    async def start(self) -> str:
        """Listen (once) and return the socket's address."""
        if self._server is None:
            path, self._directory = socket_address()
            self._server = await asyncio.start_unix_server(self._serve, path=path)
            if self._directory:
                os.chmod(path, 0o600)
            self.path = path
        return self.path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            _id, flags, payload = await read_frame(reader)
            if not (flags & HELLO and hmac.compare_digest(payload, self.secret.encode())):
                self.refused += 1
                log.warning("a connection to the shard's socket without its secret was closed")
                return
            while True:
                request_id, flags, payload = await read_frame(reader)
                self.frames += 1
                task = asyncio.get_running_loop().create_task(self._answer(writer, request_id, flags, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the caller went away; its batches in flight still finish (and are idempotent)
        finally:
            self.connections -= 1
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, request_id: int, flags: int, payload: bytes) -> None:
        answer = await self._apply(payload, bool(flags & TRACED))
        if writer.is_closing():
            return
        out_flags, out = encode_answer(answer)
        writer.write(frame(request_id, out_flags, out))
        if writer.transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._directory:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
                os.rmdir(self._directory)


class StreamLink:
    """The caller side of one connection: `call` sends a frame and awaits its answer.

    Answers come back in any order, matched by request id. When the connection drops, every call
    waiting on it fails with ConnectionError, and the link stays broken: the caller opens a new
    one (the shard may have been restarted elsewhere)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self.broken: BaseException | None = None
        self._reading = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def open(cls, path: str, secret: str) -> StreamLink:
        reader, writer = await asyncio.open_unix_connection(sock=await connected_socket(path))
        writer.write(frame(0, HELLO, secret.encode()))
        return cls(reader, writer)

    async def call(self, payload: bytes, traced: bool = False) -> Any:
        if self.broken is not None:
            raise ConnectionError(f"the shard's channel is broken: {self.broken}")
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._writer.write(frame(request_id, TRACED if traced else 0, payload))
        if self._writer.transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
            await self._writer.drain()
        return await future

    async def _read_answers(self) -> None:
        try:
            while True:
                request_id, flags, payload = await read_frame(self._reader)
                future = self._waiting.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(decode_answer(flags, payload))
        except asyncio.IncompleteReadError:
            self._break(ConnectionError("closed by the shard"))
        except (ConnectionError, OSError) as exc:
            self._break(exc)
        except asyncio.CancelledError:
            self._break(ConnectionError("the channel was closed"))
            raise

    def _break(self, reason: BaseException) -> None:
        if self.broken is None:
            self.broken = reason
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the shard's channel dropped: {reason}"))
        self._writer.close()

    async def close(self) -> None:
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._reading
        self._break(ConnectionError("the channel was closed"))
