"""No lost sagas: whatever the broker lost, PostgreSQL still knows what is pending, and this sweep
sends it again.

The broker may lose messages (tansu keeps them in memory; any broker can be restored from an
old backup) and a consumer may die. Every few seconds the supervisor reads the bookings
projection and re-publishes, from the event store, the message of each step that should have
happened by now, or does the step itself:

- a hold with no payment decision after `retry_after`: its hold event (the payment worker acts);
- a payment decided while its booking is still held after `retry_after` (the payment worker died
  between charging and confirming, or the broker lost the hold's message after the charge): the
  booking is confirmed or released here, straight at its entity, as the worker would have done;
- an ended booking whose payment stands unrefunded after `retry_after`: the ending (the payment
  worker refunds);
- a hold past its expiry (plus a grace): an ExpireHold command straight to its entity, for holds
  whose host lost its timer (a restart, or the entity was dropped from memory).

It also forgets inbox rows older than the inbox retention (engine/adapters/pg_inbox.py).

A message re-sent and still pending at the next sweep is not re-sent at every sweep: the
intervals double from `retry_after` up to `resend_max` (engine/resend_backoff.py says why).

What it reads comes through the `PendingSagas` port (engine/ports.py): PostgreSQL in production
(engine/adapters/pg_sagas.py), an in-memory fake in unit tests.

Re-sent messages carry the same message id as the originals, and every step is idempotent, so a
re-send that crosses a slow original changes nothing. A booking completed here that its payment
could not confirm any more (it ended meanwhile) is refunded by the ending's re-send, above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields

from engine.domain.commands import ExpireHold
from engine.domain.results import Done, Reply
from engine.outbox import OutgoingMessage, plan_message
from engine.ports import Clock, ExecuteCommands, PendingSagas, Publisher, SystemClock, UndeliveredDecision
from engine.resend_backoff import ResendBackoff
from engine.saga import booking_update

log = logging.getLogger("rezerv.supervisor")


@dataclass
class SweepReport:
    resent_holds: int = 0
    completed_bookings: int = 0
    resent_endings: int = 0
    expired: int = 0
    purged_inbox: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def add(self, other: SweepReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class SagaSupervisor:
    def __init__(
        self,
        sagas: PendingSagas,
        publisher: Publisher,
        execute: ExecuteCommands,
        retry_after_ms: int,
        expiry_grace_ms: int = 2000,
        batch: int = 500,
        clock: Clock | None = None,
        *,
        inbox_retention_s: float,  # REZERV_INBOX_RETENTION_S: its default lives in engine/config.py
        resend_max_ms: int,  # REZERV_SAGA_RESEND_MAX_S, likewise
        purge_batch: int = 10_000,
    ) -> None:
        self.sagas = sagas
        self.publisher = publisher
        self.execute = execute
        self.retry_after_ms = retry_after_ms
        self.expiry_grace_ms = expiry_grace_ms
        self.batch = batch
        self.clock = clock or SystemClock()
        self.inbox_retention_s = inbox_retention_s
        self.purge_batch = purge_batch
        self.totals = SweepReport()
        self.hold_resends = ResendBackoff(retry_after_ms, resend_max_ms)
        self.ending_resends = ResendBackoff(retry_after_ms, resend_max_ms)

    async def sweep(self) -> SweepReport:
        now = self.clock.now_ms()
        cutoff = now - self.retry_after_ms
        report = SweepReport()
        sagas = self.sagas
        holds = await sagas.undecided_holds(cutoff, self.batch)
        held = [(h.booking_stream, h.hold_version) for h in holds]
        report.resent_holds = await self._resend(held, self.hold_resends, now)
        decisions = await sagas.undelivered_decisions(cutoff, self.batch)
        report.completed_bookings = await self._complete(decisions)
        endings = await sagas.unrefunded(cutoff, self.batch)
        ended = [(e.booking_stream, e.terminal_version) for e in endings]
        report.resent_endings = await self._resend(ended, self.ending_resends, now)
        overdue = await sagas.overdue_holds(now, self.expiry_grace_ms, self.batch)
        if overdue:
            replies = await self.execute([ExpireHold(o.entity_id, o.kind, o.hold_id) for o in overdue])
            report.expired = _changed(replies)
        report.purged_inbox = await sagas.purge_inbox(self.inbox_retention_s, self.purge_batch)
        self.totals.add(report)
        if report.total:
            log.info("saga sweep: %s", report)
        return report

    async def _complete(self, decisions: Sequence[UndeliveredDecision]) -> int:
        """Confirm or release the bookings of payments decided long ago; how many changed."""
        if not decisions:
            return 0
        updates = [booking_update(d.booking_stream, d.hold_id, d.payment_status, d.payment_reason) for d in decisions]
        replies = await self.execute([u for u in updates if u is not None])
        return _changed(replies)

    async def _resend(self, found: list[tuple[str, int]], backoff: ResendBackoff, now: int) -> int:
        """Send again the events at `found` (stream, version) that `backoff` says are due."""
        keys = [(stream, version) for stream, version in backoff.due(found, now) if version]
        if not keys:
            return 0
        messages: list[OutgoingMessage] = []
        for event in await self.sagas.events_at(keys):
            planned = plan_message(event)
            if planned is not None:
                messages.append(planned)
        if messages:
            await self.publisher.publish_many(messages)
        backoff.sent(keys, now)
        return len(messages)

    async def run(self, stop: asyncio.Event, period_s: float = 2.0) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("saga sweep failed; trying again in %.1f s", period_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period_s)


def _changed(replies: Sequence[Reply]) -> int:
    """How many commands changed their entity (a repeat, or a refusal, changes nothing)."""
    return sum(1 for r in replies if type(r) is Done and r.changed)
