"""Topic generations on the consumer side: read each generation until it is drained, then let it go.

Publishers write a topic in generations of fixed wall-clock periods (engine/outbox.py "topic
generations"; engine/adapters/kafka_bus.py). For one consumer, `GenerationalConsumer` keeps one
`MessageConsumer` per live generation, each in a consumer group of its own (``<group>.g<N>``):

- the generation of now, and the next one from `lead_ms` before it begins, so that its group has
  joined (a join takes seconds) before the first message arrives; it fetches nothing until just
  before its period (`fetch_from_s`): each empty fetch costs the broker CPU;
- every older generation it has not drained yet, also those found on the broker at start (after a
  crash, a generation may hold messages nobody acted on);
- an older generation is drained once its period has been over for `grace_ms` (publishers that
  started a batch just before the boundary have finished it) and its consumer has twice in a row
  found every partition read to its end; the consumer then leaves, and the registry records it.

Why a group per generation rather than one group subscribed to a pattern: a new topic in a
subscription makes the whole group rebalance, which stops every partition for seconds (with
tansu about half the session timeout) once per generation; a new group stops nobody.

`retire_generations` (run by the outbox service) deletes a generation's topic once every consumer
of it seen alive lately has drained it: the broker then frees its memory. A consumer that is gone
for longer than that window no longer holds generations back; if it comes back, what it missed in
deleted generations is gone from the broker, and the saga supervisor re-sends from PostgreSQL
whatever a saga still waits for (a consumer outside the saga must tolerate that gap).

Order: one key's messages keep their order within a generation; across a boundary, a consumer
may act on a key's newer message (next generation) before an older one (previous generation),
which the saga's steps tolerate (every step is idempotent, and a payment that arrives after its
booking ended is refunded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from engine.following import wait_until
from engine.outbox import GENERATION_MARK, generation_at, generation_topic, split_generation
from engine.ports import GenerationRegistry

log = logging.getLogger("rezerv.generations")


class GenerationReader(Protocol):
    """What GenerationalConsumer needs of a MessageConsumer."""

    async def run(self, stop: asyncio.Event, fetch_from_s: float | None = None) -> None: ...

    async def stop(self) -> None: ...

    def caught_up(self) -> bool: ...


MakeReader = Callable[[str, str], GenerationReader]  # (topic name, group id) -> reader
ListTopics = Callable[[], Awaitable[Collection[str]]]


# ---- pure: which generations, and when one may be called drained ---------------------------------
def wanted_generations(now_ms: int, period_ms: int, lead_ms: int) -> set[int]:
    """The generation of now, and the next one once it is less than `lead_ms` away."""
    current = generation_at(now_ms, period_ms)
    wanted = {current}
    if (current + 1) * period_ms - now_ms < lead_ms:
        wanted.add(current + 1)
    return wanted


FETCH_EARLY_MS = 1_000
"""A generation's consumer fetches from this long before the generation begins: publishers on
other machines may run a little ahead by their clocks."""


def fetch_from_s(generation: int, now_ms: int, period_ms: int) -> float | None:
    """When a consumer started now for `generation` should begin to fetch (epoch seconds); None
    for a generation that has begun. A generation's consumer joins its group `lead_ms` before the
    generation (a join takes seconds), but fetching an empty topic for that long costs the broker
    a request every fetch wait."""
    begins_ms = generation * period_ms - FETCH_EARLY_MS
    return begins_ms / 1000 if begins_ms > now_ms else None


def may_be_drained(generation: int, now_ms: int, period_ms: int, grace_ms: int) -> bool:
    """True once `generation`'s period has been over for `grace_ms`: nothing new goes to it."""
    return now_ms >= (generation + 1) * period_ms + grace_ms


def generations_on_broker(topic: str, names: Collection[str]) -> set[int]:
    """The generations of `topic` among the broker's topic names."""
    found = set()
    for name in names:
        split = split_generation(name)
        if split is not None and split[0] == topic:
            found.add(split[1])
    return found


def generation_group(group: str, generation: int) -> str:
    return f"{group}{GENERATION_MARK}{generation}"


# ---- the consumer ----------------------------------------------------------------------------------
@dataclass
class _Running:
    reader: GenerationReader
    task: asyncio.Task[None]
    stop: asyncio.Event
    caught_up_checks: int = 0


@dataclass
class GenerationalConsumer:
    topic: str  # the topic's name with its deployment prefix, without a generation
    group: str  # the consumer group's name, ditto
    name: str  # the consumer's name (its inbox and registry name)
    make_reader: MakeReader
    registry: GenerationRegistry
    list_topics: ListTopics
    period_ms: int
    lead_ms: int = 20_000
    grace_ms: int = 5_000
    clock: Callable[[], float] = time.time
    check_s: float = 1.0
    heartbeat_s: float = 10.0
    running: dict[int, _Running] = field(default_factory=dict)
    drained_here: list[int] = field(default_factory=list)  # generations this instance retired, in order

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every live generation until `stop` is set (see the module docstring)."""
        heartbeat_at = float("-inf")
        adopted = False
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - heartbeat_at >= self.heartbeat_s:
                        await self.registry.heartbeat(self.name, self.topic, self._now_ms())
                        heartbeat_at = time.monotonic()
                    if not adopted:
                        await self._adopt_undrained()
                        adopted = True
                    self._start(wanted_generations(self._now_ms(), self.period_ms, self.lead_ms))
                    await self._retire_drained()
                except Exception as exc:  # the registry or the broker is away: try again next round
                    log.warning("consumer %s: generations of %s: %r; retrying", self.name, self.topic, exc)
                await wait_until(stop, None, self.check_s)
        finally:
            await asyncio.gather(*(self._stop_reader(g) for g in list(self.running)), return_exceptions=True)

    async def _adopt_undrained(self) -> None:
        """Older generations still on the broker that this consumer has not drained: read them too."""
        current = generation_at(self._now_ms(), self.period_ms)
        on_broker = generations_on_broker(self.topic, await self.list_topics())
        drained = await self.registry.drained(self.name, self.topic)
        self._start({g for g in on_broker if g < current and g not in drained})

    def _start(self, generations: Collection[int]) -> None:
        for generation in generations:
            if generation in self.running:
                continue
            reader = self.make_reader(
                generation_topic(self.topic, generation), generation_group(self.group, generation)
            )
            stop = asyncio.Event()
            starts = fetch_from_s(generation, self._now_ms(), self.period_ms)
            task = asyncio.get_running_loop().create_task(
                reader.run(stop, starts), name=f"consumer-{self.name}-g{generation}"
            )
            self.running[generation] = _Running(reader, task, stop)
            log.info("consumer %s: reading %s", self.name, generation_topic(self.topic, generation))

    async def _retire_drained(self) -> None:
        now = self._now_ms()
        for generation, running in sorted(self.running.items()):
            if not may_be_drained(generation, now, self.period_ms, self.grace_ms):
                continue
            running.caught_up_checks = running.caught_up_checks + 1 if running.reader.caught_up() else 0
            if running.caught_up_checks < 2:
                continue
            await self._stop_reader(generation)
            await self.registry.mark_drained(self.name, self.topic, generation)
            self.drained_here.append(generation)
            log.info("consumer %s: drained %s", self.name, generation_topic(self.topic, generation))

    async def _stop_reader(self, generation: int) -> None:
        running = self.running.pop(generation, None)
        if running is None:
            return
        running.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running.reader.stop(), 30)
        running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)


# ---- retiring --------------------------------------------------------------------------------------
DeleteTopics = Callable[[Collection[str]], Awaitable[None]]


async def retire_generations(
    topics: Collection[str],
    registry: GenerationRegistry,
    list_topics: ListTopics,
    delete_topics: DeleteTopics,
    now_ms: int,
    period_ms: int,
    alive_window_ms: int,
) -> dict[str, list[int]]:
    """Delete every generation older than now's, of each of `topics` (prefixed names), that every
    consumer seen alive within `alive_window_ms` has drained. Returns what was deleted."""
    current = generation_at(now_ms, period_ms)
    names = await list_topics()
    deleted: dict[str, list[int]] = {}
    for topic in topics:
        older = sorted(g for g in generations_on_broker(topic, names) if g < current)
        if not older:
            continue
        done = await registry.retirable(topic, older, now_ms - alive_window_ms)
        if not done:
            continue
        await delete_topics([generation_topic(topic, g) for g in done])
        await registry.forget(topic, done)
        deleted[topic] = done
        log.info("retired %s generations %s", topic, done)
    return deleted
