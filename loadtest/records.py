"""What the load generator's users were told, written as they go and read back by the auditor.

Each Locust process appends to its own file, ``records-<pid>.jsonl`` in the run's directory, two
lines per Idempotency-Key: an intent before the first request (so a user stopped mid-request
still left a trace of the key it sent) and an outcome after the last (the final status, and the
hold id of every 201, retries included). Lines are written as they happen, so a process that is
killed loses at most the line it was writing. Keys are unique (a random prefix a user and a count),
so the files of several processes and steps are simply read together.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from api.hold_keys import hold_id_for
from engine.domain.commands import split_stream_id
from loadtest.audit_rules import NO_OUTCOME, ClientHold

PATTERN = "records-*.jsonl"


@dataclass
class RecordWriter:
    """Appends records of one process; one line per write (unbuffered, so each line is one
    append). Encoded with orjson: `json.dumps` was about 5% of the load generator's samples."""

    directory: Path
    _file: IO[bytes] | None = field(default=None, repr=False)

    def _out(self) -> IO[bytes]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = (self.directory / f"records-{os.getpid()}.jsonl").open("ab", buffering=0)
        return self._file

    def intent(self, customer: str, entity: str, key: str) -> None:
        """The key about to be sent. The hold id it stands for is derived when the records are read
        (`read_client_holds`), not here: the generator shares the cores with the system it measures."""
        self._write({"i": key, "c": customer, "e": entity})

    def outcome(
        self,
        customer: str,
        entity: str,
        key: str,
        status: int,
        acked: list[str],
        amount: int | None,
        expires_at: int | None,
        acked_at: float | None,
        attempts: int,
    ) -> None:
        self._write(
            {"o": key, "c": customer, "e": entity, "s": status, "h": acked, "a": amount, "x": expires_at}
            | {"t": acked_at, "n": attempts}
        )

    def _write(self, record: dict[str, Any]) -> None:
        self._out().write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class Acknowledgement:
    """A 201 as the client saw it: for the hold rate of a window."""

    hold_id: str
    at: float  # time.time() when the client got it


def _lines(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.rglob(PATTERN)):
        with path.open() as f:
            for line in f:
                if line.endswith("\n"):  # a line cut by a kill is skipped
                    yield json.loads(line)


def read_client_holds(directory: Path) -> list[ClientHold]:
    """One ClientHold per key sent, from every records file under `directory`; each key's hold id
    is the one rezerv derives from it (api/hold_keys.py), which the baselines derive too."""
    intents: dict[tuple[str, str, str], None] = {}  # the keys sent, in order, each once
    outcomes: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in _lines(directory):
        if "i" in record:
            intents[(record["c"], record["e"], record["i"])] = None
        else:
            outcomes[(record["c"], record["e"], record["o"])] = record
    holds = []
    for ident in intents:
        out = outcomes.get(ident)
        customer, entity, key = ident
        hold_id = hold_id_for(customer, *split_stream_id(entity), key)
        if out is None:
            holds.append(ClientHold(customer, entity, key, hold_id, NO_OUTCOME))
        else:
            acked = tuple(out["h"])
            holds.append(ClientHold(customer, entity, key, hold_id, out["s"], acked, out["a"], out["x"]))
    return holds


def read_acknowledgements(directory: Path) -> list[Acknowledgement]:
    """Every key's first 201, with the time the client got it."""
    return [
        Acknowledgement(record["h"][0], record["t"])
        for record in _lines(directory)
        if "o" in record and record["h"] and record["t"] is not None
    ]


def read_outcome_counts(directory: Path) -> dict[str, int]:
    """How the keys ended: acknowledged, refused (by status), unanswered, and retried."""
    counts: dict[str, int] = {}
    for record in _lines(directory):
        if "o" not in record:
            continue
        status = record["s"]
        name = "acknowledged" if record["h"] else ("no answer" if status == 0 else f"answered {status}")
        counts[name] = counts.get(name, 0) + 1
        if record["n"] > 1:
            counts["retried"] = counts.get("retried", 0) + 1
    return dict(sorted(counts.items()))
