"""The caller side of the shards: route, coalesce, send as bytes, retry what is safe to retry.

Commands submitted in the same event-loop tick for the same shard leave as one call (up to
`batch_max` commands). While a call is out, new commands queue and go with the next call, so
batches grow with load and the hop is paid once per batch, not once per command: one Ray call
costs 1.1-4 ms of CPU, caller and actor together (Ray 2.60 on a 2-core machine; `rezerv bench
ray-calls`), a ceiling near 1,000-1,500 calls/s however the actor is written, while calls carrying
batches of 100 commands reached 100-130k commands/s. Over the shard's socket (below) the hop is
cheaper (at 16 Locust users the API's CPU per booking fell by 30% and the shards' by 42%,
BENCHMARKS.md section 3), and a batch still pays its group commit once.

A second call (up to `calls_in_flight`) leaves beside one already out only with at least a
quarter of a batch (`overlap_min`, batch_max // 4). Sending partial batches side by side spent
that millisecond on two or three commands a call at moderate load (a flash sale at 16-256
closed-loop users: 2.5 commands a call, about 40% more CPU per hold in the API and the shards,
BENCHMARKS.md section 3), while waiting for the call in flight costs a small batch one round
trip. Demanding a full batch instead cost the engine benchmark's sell-out with 1,024 callers
about 30%: its callers come back a call at a time, and a remainder short of a full batch then
waited behind calls that were already full.

How a batch travels (`direct`): over the shard's Unix socket when the caller is on the shard's
node (actors/shard_stream.py), otherwise, or when the socket cannot be opened, as a Ray call.
Both carry the same bytes; a broken channel is opened again for the next batch.

Retries: a command answered with a TransientError (store down, entity re-owned) or lost with
its shard (the actor died mid-call: "may or may not have been executed") is sent again, with
the same idempotency key, until `retry_for_s` runs out. Every command is idempotent, so the
answer to the retry is the original one. Business refusals are never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import Gauge, Histogram

from actors.routing import Router
from actors.shard_stream import StreamLink, node_id
from actors.wire import decode_replies, encode_batch
from engine import tracing
from engine.domain.commands import Command
from engine.domain.errors import RezervError, ShardUnavailable, TransientError
from engine.domain.results import Reply, Result

HandleFactory = Callable[[int], Any]
R = TypeVar("R", bound=Result)
Link = Callable[..., Awaitable[Any]]
"""Sends one encoded batch to a shard: `link(payload)` -> replies, `link(payload, True)` ->
(replies, stages). A Ray actor method's `.remote`, or a StreamLink's `call`."""
log = logging.getLogger("rezerv.client")

CALL_SECONDS = Histogram(
    "rezerv_engine_call_seconds",
    "Round trip of one call to a shard (socket or Ray), from sending its batch to decoding its replies",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CALL_COMMANDS = Histogram(
    "rezerv_engine_call_commands",
    "Commands carried by one call to a shard (the batch size)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
SHARD_LINKS = Gauge(
    "rezerv_engine_shard_links",
    "Shards this process sends batches to, by how they travel: stream (the shard's Unix socket) or ray",
    ["transport"],
)
QUEUE_SECONDS = Histogram(
    "rezerv_engine_queue_seconds",
    "How long the oldest command of a batch waited in the client for a free call slot",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class Pending:
    """One command waiting for its answer, and how long it may be retried.

    The answer goes to `future` (an awaiting caller) or, if it is None, to `callback`. The callback
    form exists for callers that keep thousands of commands in flight from plain callbacks (the
    benchmark's load generator): a future per command costs an allocation, a done-callback and a
    trip through the event loop's ready queue, about a fifth of that generator's CPU."""

    __slots__ = ("callback", "command", "deadline", "delay", "future", "queued_at", "trace")

    def __init__(
        self,
        command: Command,
        future: asyncio.Future[Reply] | None,
        deadline: float,
        callback: Callable[[Reply], object] | None = None,
        trace: tracing.RequestTrace | None = None,
    ) -> None:
        self.command = command
        self.future = future
        self.callback = callback
        self.deadline = deadline  # monotonic time after which a transient failure is the answer
        self.delay = 0.01
        self.queued_at = 0.0
        self.trace = trace  # the root span of a sampled booking's request (engine/tracing.py)


class ShardChannel:
    """One shard's queue of commands and its calls in flight.

    Retries live here, not in a coroutine around each call: a transient answer (or a call lost
    with its shard) puts the same command back in the queue after a jittered backoff, and the
    caller's one future is resolved only with a final answer. A caller therefore awaits a single
    future per command, which matters at tens of thousands of commands per second."""

    def __init__(
        self,
        handle_for: HandleFactory,
        index: int,
        batch_max: int,
        calls_in_flight: int,
        overlap_min: int | None = None,
        direct: bool = False,
    ) -> None:
        self.handle_for = handle_for
        self.index = index
        self.handle: Any = None
        self.direct = direct
        self.link: Link | None = None
        self.stream: StreamLink | None = None
        self._linking: asyncio.Lock | None = None
        self.batch_max = batch_max
        self.calls_in_flight = calls_in_flight
        self.overlap_min = overlap_min if overlap_min is not None else max(1, batch_max // 4)
        self.queue: list[Pending] = []
        self.in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self.calls = 0
        self.commands = 0
        self.retries = 0
        self.round_trip_s = 0.0  # from sending a batch until its replies are decoded
        self.resolve_s = 0.0  # handing the replies to the callers (with callbacks: running them)

    def submit(
        self, command: Command, retry_for_s: float = 0.0, trace: tracing.RequestTrace | None = None
    ) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._enqueue(Pending(command, future, _deadline(retry_for_s), None, trace))
        return future

    def submit_then(self, command: Command, callback: Callable[[Reply], object], retry_for_s: float = 0.0) -> None:
        """Like `submit`, but `callback(reply)` is called with the final reply (from the event loop)."""
        self._enqueue(Pending(command, None, _deadline(retry_for_s), callback))

    def _enqueue(self, item: Pending) -> None:
        item.queued_at = time.perf_counter()
        self.queue.append(item)
        if not self._scheduled and self._may_send():
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _may_send(self) -> bool:
        """Whether a call may leave now: none is out, or at least `overlap_min` commands wait and
        a slot is free (a smaller batch waits for the call out; see the module's docstring)."""
        if not self.in_flight:
            return bool(self.queue)
        return self.in_flight < self.calls_in_flight and len(self.queue) >= self.overlap_min

    def _flush(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._may_send():
            batch = self.queue[: self.batch_max]
            del self.queue[: self.batch_max]
            self.in_flight += 1
            task = loop.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Pending]) -> None:
        try:
            link = self.link or await self._open_link()
            payload = encode_batch([item.command for item in batch])
            self.calls += 1
            self.commands += len(batch)
            sent = time.perf_counter()
            QUEUE_SECONDS.observe(sent - batch[0].queued_at)
            CALL_COMMANDS.observe(len(batch))
            traced = [item for item in batch if item.trace is not None] if tracing.ENABLED else None
            if traced:  # the shard reports its stages with the answer (actors/shard.py)
                sent_ns = time.time_ns()
                raw, stages = _with_stages(await link(payload, True))
            else:
                raw = await link(payload)
            replies = decode_replies(raw)
            decoded = time.perf_counter()
            if traced:
                queued = ((i.trace, sent_ns - int((sent - i.queued_at) * 1e9)) for i in traced)
                tracing.record_call(queued, sent_ns, time.time_ns(), stages, self.index, len(batch))  # type: ignore[arg-type]
            self.round_trip_s += decoded - sent
            CALL_SECONDS.observe(decoded - sent)
            if len(replies) != len(batch):  # the shard refused the whole batch
                replies = [replies[0]] * len(batch)
            for item, reply in zip(batch, replies, strict=True):
                self._deliver(item, reply)
            self.resolve_s += time.perf_counter() - decoded
        except Exception as exc:  # the shard died or restarted mid-call, or was never reachable
            self._drop_link()
            error = _shard_error(exc)
            for item in batch:
                self._deliver(item, error)
        finally:
            self.in_flight -= 1
            if self.queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    async def _open_link(self) -> Link:
        """The shard's socket if it is on this node and `direct`, else its Ray method; one at a
        time, so the calls of a burst share the link the first of them opened."""
        if self._linking is None:
            self._linking = asyncio.Lock()
        async with self._linking:
            if self.link is not None:
                return self.link
            if self.handle is None:
                self.handle = self.handle_for(self.index)
            link: Link = self._ray_call
            if self.direct and hasattr(self.handle, "channel"):
                where = await self.handle.channel.remote()
                if where and where.get("node") == node_id():
                    try:
                        self.stream = await StreamLink.open(where["path"], where["secret"])
                        link = self.stream.call
                    except OSError as exc:  # not reachable from here after all: Ray carries it
                        log.warning("shard %d: socket %s not usable (%s); using Ray calls", self.index, where, exc)
            self.link = link
            SHARD_LINKS.labels(self.transport).inc()
            return link

    @property
    def transport(self) -> str:
        """How the open link carries batches: "stream" (the shard's socket), "ray", or "" (none open)."""
        if self.link is None:
            return ""
        return "stream" if self.stream is not None else "ray"

    def _ray_call(self, payload: bytes, *traced: bool) -> Any:
        """A Ray call of the shard's `call`, looked up on each batch (a restarted actor keeps its
        handle; a test may swap the method)."""
        return self.handle.call.remote(payload, *traced)

    async def close(self) -> None:
        """Close the shard's socket, if one is open, so its reader task ends with the client
        instead of being destroyed pending when the event loop stops."""
        stream = self.stream
        if self.link is not None:
            self._forget_link()
        if stream is not None:
            await stream.close()

    def _drop_link(self) -> None:
        """After a failed call: a broken socket is opened anew (the shard may have restarted)."""
        stream = self.stream
        if self.link is not None and (stream is None or stream.broken is not None):
            self._forget_link()

    def _forget_link(self) -> None:
        """The open link is no longer used: the next batch opens one (the gauge counts open links)."""
        SHARD_LINKS.labels(self.transport).dec()
        self.link = None
        self.stream = None

    def _deliver(self, item: Pending, reply: Reply) -> None:
        future = item.future
        if future is not None and future.done():  # the caller gave up (cancelled)
            return
        if isinstance(reply, TransientError) and item.deadline and time.monotonic() < item.deadline:
            self.retries += 1
            delay = item.delay * (0.5 + random.random())
            item.delay = min(item.delay * 2, 0.5)
            asyncio.get_running_loop().call_later(delay, self._enqueue, item)
            return
        if future is not None:
            future.set_result(reply)
            return
        try:
            item.callback(reply)  # type: ignore[misc]
        except Exception:  # one caller's bug must not cost the rest of the batch their answers
            log.exception("reply callback for %r failed", item.command)


def _with_stages(answer: Any) -> tuple[bytes, dict[str, int] | None]:
    """A traced call's answer: (replies, the shard's stages); a refused batch comes without stages."""
    if isinstance(answer, tuple):
        return answer[0], answer[1]
    return answer, None


def _deadline(retry_for_s: float) -> float:
    """The monotonic time until which a transient failure is retried; 0.0 for no retry."""
    return time.monotonic() + retry_for_s if retry_for_s > 0 else 0.0


def _shard_error(exc: BaseException) -> RezervError:
    try:
        import ray.exceptions as rex
    except ImportError:  # pragma: no cover
        return ShardUnavailable(str(exc))
    if isinstance(exc, rex.RayError | ConnectionError | OSError):
        return ShardUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}")
    return ShardUnavailable(f"unexpected {type(exc).__name__}: {str(exc)[:200]}")


class InventoryClient:
    def __init__(
        self,
        handle_for: HandleFactory,
        shard_count: int,
        batch_max: int = 256,
        calls_in_flight: int = 4,
        retry_for_s: float = 15.0,
        direct: bool = False,
    ) -> None:
        self.router = Router(shard_count)
        self.channels = [
            ShardChannel(handle_for, i, batch_max, calls_in_flight, direct=direct) for i in range(shard_count)
        ]
        self.retry_for_s = retry_for_s

    async def close(self) -> None:
        """Close every shard channel's socket (a later command opens it again)."""
        await asyncio.gather(*(channel.close() for channel in self.channels))

    def submit(self, command: Command) -> asyncio.Future[Reply]:
        """One attempt, no retry: a future with the result or a RezervError (never raised)."""
        return self.channels[self.router.shard_of(command.stream_id)].submit(command)

    def request(self, command: Command, trace: tracing.RequestTrace | None = None) -> asyncio.Future[Reply]:
        """A future with the final reply: transient failures are retried (same command, same
        idempotency key) until `retry_for_s`; errors are returned, not raised. `trace`: the
        request's root span when its booking is traced (engine/tracing.py)."""
        return self.channels[self.router.shard_of(command.stream_id)].submit(command, self.retry_for_s, trace)

    def request_then(self, command: Command, callback: Callable[[Reply], object]) -> None:
        """`request` with a callback instead of a future: `callback(reply)` gets the final reply."""
        self.channels[self.router.shard_of(command.stream_id)].submit_then(command, callback, self.retry_for_s)

    async def attempt(self, command: Command) -> Reply:
        return await self.request(command)

    async def execute(self, command: Command) -> Result:
        """The result; raises the RezervError if the answer was an error."""
        reply = await self.request(command)
        if isinstance(reply, RezervError):
            raise reply
        return reply

    async def execute_as(self, command: Command, expected: type[R]) -> R:
        """`execute` for a caller that knows which result its command succeeds with: an answer of
        another type is a bug in the engine, named here rather than found as a missing attribute."""
        result = await self.execute(command)
        if not isinstance(result, expected):
            raise TypeError(f"{type(command).__name__} answered {type(result).__name__}, not {expected.__name__}")
        return result

    async def execute_many(self, commands: Sequence[Command]) -> list[Reply]:
        return list(await asyncio.gather(*(self.request(c) for c in commands)))

    @property
    def retries(self) -> int:
        return sum(c.retries for c in self.channels)

    def stats(self) -> dict[str, float]:
        calls = sum(c.calls for c in self.channels)
        commands = sum(c.commands for c in self.channels)
        return {
            "calls": calls,
            "commands": commands,
            "avg_batch": commands / calls if calls else 0.0,
            "retries": self.retries,
            "round_trip_s": sum(c.round_trip_s for c in self.channels),
            "resolve_s": sum(c.resolve_s for c in self.channels),
            "stream_links": sum(1 for c in self.channels if c.stream is not None),
        }


def ray_client(settings: Any, retry_for_s: float = 15.0) -> InventoryClient:
    """A client whose shards are the named Ray actors of `settings` (created on first use).

    `retry_for_s`: how long a transient failure is retried before it is the answer. The saga's
    workers wait out an outage (their batch is retried anyway); the API answers its client
    sooner (REZERV_REQUEST_RETRY_S), with a 503 and Retry-After."""
    from actors.factory import shard_handle

    return InventoryClient(
        lambda index: shard_handle(settings, index),
        settings.shard_count,
        batch_max=settings.batch_max,
        calls_in_flight=settings.calls_in_flight,
        retry_for_s=retry_for_s,
        direct=settings.shard_transport == "stream",
    )
