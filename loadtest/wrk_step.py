"""wrk as the flash sale's load generator: its script, its output, and its answers as client records.

Why a second generator: Locust costs 500-750 us of CPU per booking (a hold and its read), so on a
2-core machine it cannot offer the issue's 2,000 bookings/s beside the system it measures. wrk
(C, one thread) costs 1-2% of a core at that rate. `rezerv loadtest run --generator wrk` keeps
everything else of a step: the population (funded customers, each with its own token), the
window, the wait until nothing is HELD, the store's count of confirmations and the audit.

What a wrk connection does differs from a Locust user: it posts holds back to back (1-4 tickets
of the hot tier, a random customer, a fresh Idempotency-Key each) and reads nothing, and it does
not retry: an answer other than 201 is counted by status and its key's outcome stays unknown to
the audit ("may or may not exist"), which is what a client that gave up knows.

The script writes, per wrk thread, one line per request sent (the customer's index and the key)
and one per answer (the status; for a 201 the hold id, amount and expiry). An answer does not
say which request it answers, so `convert_records` matches a 201 to its key through the hold id,
which the API derives from (customer, entity, key) (api/hold_keys.py), and writes the records
the audit reads (loadtest/records.py).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.hold_keys import hold_id_for
from loadtest.population import Customer

RAW_PATTERN = "wrk-raw-*.txt"
RECORDS_FILE = "records-wrk.jsonl"  # matches loadtest/records.py PATTERN
SUMMARY_MARK = "rezerv-wrk-summary "
INSTALL_HINT = "install wrk (Debian/Ubuntu: `apt install wrk`; macOS: `brew install wrk`)"


class WrkMissing(RuntimeError):
    """wrk is not on PATH."""


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(f"--generator wrk needs the wrk program, which is not on PATH: {INSTALL_HINT}")
    return path


def _lua_string(text: str) -> str:
    """A Lua string literal of `text` (customer ids and tokens are ASCII without quotes, but the
    script must not depend on it)."""
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


def lua_script(
    customers: Sequence[Customer], path: str, tier: str, key_prefix: str, raw_dir: Path, think_ms: int = 0
) -> str:
    """The wrk script: holds of 1-4 tickets of `tier` at `path` for random customers, each with a
    new key (`key_prefix`, the thread's number, a counter), every request and answer logged.
    `think_ms`: each connection waits this long after an answer before its next request (wrk's
    `delay`), so C connections offer at most C * 1000 / think_ms holds/s: a rate below the
    system's ceiling, where the saga's latency can be read at a known load."""
    if think_ms < 0:
        raise ValueError("think_ms must be 0 or more")
    if not customers:
        raise ValueError("a wrk step needs at least one customer")
    if any(not c.customer_id.isascii() or not c.token.isascii() for c in customers):
        raise ValueError("customer ids and tokens must be ASCII")
    rows = ",\n".join(f"  {{{_lua_string(c.customer_id)}, {_lua_string('Bearer ' + c.token)}}}" for c in customers)
    raw = _lua_string(str(raw_dir / "wrk-raw-"))
    delay = f"function delay()\n  return {think_ms}\nend\n\n" if think_ms else ""
    return f"""-- written by loadtest/wrk_step.py for one step of `rezerv loadtest run --generator wrk`
local customers = {{
{rows}
}}
local path = {_lua_string(path)}
local body_start = {_lua_string('{"quantities":{' + json.dumps(tier) + ":")}
local prefix = {_lua_string(key_prefix)}

local threads = {{}}
function setup(thread)
  thread:set("thread_number", #threads)
  table.insert(threads, thread)
end

local sent = 0
local out = nil
local key_base = nil

function init(args)
  math.randomseed(os.time() + thread_number * 7919)
  key_base = prefix .. "-" .. thread_number .. "-"
  out = io.open({raw} .. thread_number .. ".txt", "w")
  out:setvbuf("full", 65536)
end

function request()
  sent = sent + 1
  local index = math.random(#customers)
  local key = key_base .. sent
  out:write("i ", index, " ", key, "\\n")
  local headers = {{
    ["Authorization"] = customers[index][2],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }}
  return wrk.format("POST", path, headers, body_start .. math.random(1, 4) .. "}}}}")
end

{delay}function response(status, headers, body)
  if status == 201 then
    local hold_id = string.match(body, '"hold_id":"([^"]+)"') or "-"
    local amount = string.match(body, '"amount":(%d+)') or "-"
    local expires = string.match(body, '"expires_at_ms":(%d+)') or "-"
    out:write("o 201 ", hold_id, " ", amount, " ", expires, " ", os.time(), "\\n")
  else
    out:write("o ", status, "\\n")
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{SUMMARY_MARK}{{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p95_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"max_us\\": %d, \\"connect_errors\\": %d, \\"read_errors\\": %d, " ..
    "\\"write_errors\\": %d, \\"timeouts\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_argv(wrk: str, url: str, connections: int, duration_s: float, script: Path) -> list[str]:
    """One thread (it drives a single API process to its ceiling on this kind of machine), a 30 s
    timeout (wrk's default of 2 s would count the slow answers of a saturated API as errors)."""
    return [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]


def parse_summary(stdout: str) -> dict[str, Any]:
    """The figures the script's `done` printed; ValueError if wrk did not get there."""
    for line in stdout.splitlines():
        if line.startswith(SUMMARY_MARK):
            return dict(json.loads(line[len(SUMMARY_MARK) :]))
    raise ValueError("wrk printed no summary (did it start? see wrk.log)")


_OUTCOME = re.compile(r"^o (\d+)(?: (\S+) (\S+) (\S+) (\d+))?$")


@dataclass
class WrkAnswers:
    """What the wrk threads of one step sent and were told."""

    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # status -> answers (0: no answer)
    acknowledged: int = 0  # 201s matched to their key
    unmatched: int = 0  # 201s whose hold id is no key's: a bug in the API or in this matching

    def keys(self) -> dict[str, int]:
        """How the keys ended, as loadtest/records.py counts them for Locust."""
        return {"acknowledged": self.acknowledged, "not acknowledged": self.sent - self.acknowledged}


def convert_records(
    raw_dir: Path, out_dir: Path, customers: Sequence[Customer], kind: str, entity_id: str
) -> WrkAnswers:
    """The raw lines of every wrk thread as the client records the audit reads (`RECORDS_FILE`
    in `out_dir`): an intent per key, and an outcome for each key a 201 answered."""
    answers = WrkAnswers()
    entity = f"{kind}/{entity_id}"
    intents: dict[str, tuple[str, str]] = {}  # hold id -> (customer, key)
    granted: list[tuple[str, str, str, str]] = []  # (hold id, amount, expires, at)
    for raw in sorted(raw_dir.glob(RAW_PATTERN)):
        with raw.open() as f:
            for line in f:
                if not line.endswith("\n"):  # cut by the end of the process
                    continue
                if line.startswith("i "):
                    _, index, key = line.split()
                    customer = customers[int(index) - 1].customer_id  # Lua counts from 1
                    intents[hold_id_for(customer, kind, entity_id, key)] = (customer, key)
                    answers.sent += 1
                    continue
                match = _OUTCOME.match(line.rstrip("\n"))
                if match is None:
                    continue
                status = match.group(1)
                answers.statuses[status] = answers.statuses.get(status, 0) + 1
                if status == "201":
                    granted.append((match.group(2), match.group(3), match.group(4), match.group(5)))
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / RECORDS_FILE).open("w") as out:
        for customer, key in intents.values():
            out.write(_line({"i": key, "c": customer, "e": entity}))
        for hold_id, amount, expires, at in granted:
            intent = intents.get(hold_id)
            if intent is None:
                answers.unmatched += 1
                continue
            customer, key = intent
            answers.acknowledged += 1
            outcome = {"o": key, "c": customer, "e": entity, "s": 201, "h": [hold_id]}
            outcome |= {"a": _int(amount), "x": _int(expires), "t": float(at), "n": 1}
            out.write(_line(outcome))
    return answers


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"
