"""Settled records leave memory: what an entity keeps of the bookings or payments it archived.

A hot event sells hundreds of thousands of bookings and a wallet pays for every one of its
customer's; kept in memory, they grow a shard by about 0.7 KiB per booking until it runs out. Yet
a settled record (a booking confirmed, released, expired or cancelled; a payment decided) is
needed again only when a command names it: a retried hold or payment, a cancellation, a refund,
a repeated confirmation. So the host writes settled records to the archive (a table, fenced like
the log) and then the entity drops them, keeping only:

- `archived_keys`, a KeyFilter of the keys it dropped (about 3 bytes each, for at least the
  idempotency lifetime): a *new* key (a hold id, a saga id) that it certainly does not contain
  is decided at once, as before; one it may contain is looked up first;
- `ever_archived`: whether a command naming a key that is not in memory must be looked up
  (a cancellation may come months later, after the filter forgot the key; the archive keeps a
  confirmed booking's record for as long as it can be cancelled).

The lookup happens outside the entity: the command is answered ArchiveLookupNeeded (nothing
changed), the host reads the archive, and runs a RestoreRecord (a logged RecordRestored event, so
a replay from a snapshot taken while the record was out of memory finds it again) or marks the key
`resolved` (not archived: a false positive of the filter, or a key never seen), then runs the
command again. No `await` happens between a check and its change: the entity is never asked to
decide with half its state.
"""

from __future__ import annotations

from typing import Any

from engine.domain.commands import RestoreRecord
from engine.domain.errors import ArchiveLookupNeeded
from engine.domain.events import RecordRestored
from engine.domain.keyfilter import KeyFilter
from engine.domain.results import Done

DEFAULT_LIFETIME_MS = 86_400_000  # REZERV_IDEMPOTENCY_TTL_S's default; the host sets the configured one


class Archiving:
    """Mixed into aggregates whose keyed records can be archived (BookingHost, Wallet)."""

    def _init_archiving(self) -> None:
        self.archived_keys = KeyFilter(DEFAULT_LIFETIME_MS)
        self.ever_archived = False
        # Keys the host found absent from the archive for the command it is about to run again.
        # Transient: never snapshotted, emptied by the host after the run.
        self.resolved: set[str] = set()

    def check_new_key(self, key: str) -> None:
        """Before deciding a command that would create a record under `key` (a hold, a payment)."""
        if self.archived_keys and key not in self.resolved and self.archived_keys.may_contain(key):
            raise ArchiveLookupNeeded(key)

    def check_absent_key(self, key: str) -> None:
        """Before answering that no record `key` exists (a confirmation, a cancellation, a refund)."""
        if self.ever_archived and key not in self.resolved:
            raise ArchiveLookupNeeded(key)

    def _archived(self, key: str, now: int, lifetime_ms: int) -> None:
        filt = self.archived_keys
        filt.lifetime_ms = lifetime_ms
        filt.add(key, now)
        self.ever_archived = True

    def _archiving_state(self) -> tuple[Any, ...]:
        return (self.archived_keys.to_bytes(), self.ever_archived)

    def _restore_archiving(self, state: tuple[Any, ...]) -> None:
        data, ever = state
        self.archived_keys = KeyFilter.from_bytes(data, DEFAULT_LIFETIME_MS)
        self.ever_archived = bool(ever)
        self.resolved = set()

    # ---- the records: each aggregate says which dict holds them and how they move ---------------
    def _archive_records(self) -> dict[str, Any]:
        raise NotImplementedError

    def _younger(self, record: Any, settled_before: int) -> bool:
        """Whether `record` came in at or after `settled_before`, so that it cannot have settled
        before then (`archivable` stops there). False: every record is looked at."""
        return False

    def _may_archive(self, record: Any, settled_before: int) -> bool:
        """Settled (no decision pending on it) since before `settled_before`."""
        raise NotImplementedError

    def _keep_until(self, record: Any, now: int, lifetime_ms: int) -> int:
        """Until when the archive must keep it: the idempotency lifetime, or longer while a later
        command may still change it (a confirmed booking can be cancelled, its payment refunded)."""
        raise NotImplementedError

    def _record_from_tuple(self, row: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    def _on_archived(self, record: Any) -> None:
        """Keep the totals the record counted in (confirmed tickets, money charged) whole."""

    def _on_restored(self, record: Any) -> None:
        """The reverse of `_on_archived`."""

    # ---- moving records out and back ------------------------------------------------------------
    def archivable(self, settled_before: int, now: int, lifetime_ms: int, limit: int) -> list[tuple[str, Any, int]]:
        """Up to `limit` records that may leave memory: (key, record as a tuple, keep until).
        Records are kept in the order they came in, so the scan stops at the first one that came
        in at or after `settled_before` (`_younger`): neither it nor, as a rule, any later one can
        have settled before then. A hot event keeps the last minute's 100,000 records, and a scan
        of all of them each round stopped its shard's event loop for 10-30 ms. The exceptions
        only wait: a record back from the archive sits at the end, though older, and is reached
        once the ones before it have left or aged."""
        rows = []
        for key, record in self._archive_records().items():
            if self._younger(record, settled_before):
                break
            if self._may_archive(record, settled_before):
                rows.append((key, record.as_tuple(), self._keep_until(record, now, lifetime_ms)))
                if len(rows) >= limit:
                    break
        return rows

    def archive(self, rows: list[tuple[str, Any, int]], now: int, lifetime_ms: int) -> int:
        """Drop the records of `rows` (now stored in the archive) from memory, each only if it is
        still what was stored (a record that changed since stays, to be archived again later).
        Returns how many left."""
        records = self._archive_records()
        dropped = 0
        for key, row, _ in rows:
            record = records.get(key)
            if record is None or record.as_tuple() != row:
                continue
            del records[key]
            self._on_archived(record)
            self._archived(key, now, lifetime_ms)
            dropped += 1
        return dropped

    def restore(self, cmd: RestoreRecord, now: int) -> Done:
        records = self._archive_records()
        changed = cmd.key not in records
        if changed:
            self.record(RecordRestored(cmd.entity_id, cmd.key, cmd.record, now))  # type: ignore[attr-defined]
        record = records[cmd.key]
        status = record.status
        return Done(cmd.entity_id, cmd.key, getattr(status, "value", status), record.amount, changed=changed)

    def _apply_restored(self, e: RecordRestored) -> None:
        records = self._archive_records()
        if e.key in records:  # replayed from a snapshot taken before it was archived: it is there
            return
        record = self._record_from_tuple(e.record)
        records[e.key] = record
        self._on_restored(record)
