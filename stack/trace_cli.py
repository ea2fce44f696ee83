"""`rezerv trace HOLD_ID`: one booking's trace as a timeline, from the span files of every process.

Without an OTLP endpoint each rezerv process writes its spans as JSON lines in REZERV_TRACE_DIR
(default DATA_DIR/traces; engine/tracing.py). A booking's trace id is a function of its hold id,
so this command needs nothing but the hold id: it reads every file there, keeps the spans of that
trace and prints them as a tree ordered by start time, with each span's offset from the first,
its duration and the process it ran in. Spans are written in the background about every half
second, so a booking a moment old may still be missing its last steps; run it again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.tracing import trace_id_hex


def read_spans(directory: Path, trace_id: str) -> list[dict[str, Any]]:
    """Every span of `trace_id` in the directory's span files (unreadable lines are skipped)."""
    spans: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            if trace_id not in line:  # cheap pre-filter: most lines are other bookings'
                continue
            try:
                span = json.loads(line)
            except ValueError:
                continue
            if span.get("trace_id") == trace_id:
                spans.append(span)
    return spans


def _in_tree_order(spans: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(depth, span), parents before their children, siblings by start; orphans at the top.

    A retried hold request (the same Idempotency-Key) has the root's ids again: its children are
    shown once, under the first request, and the retry as a span of its own."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id") if span.get("parent_id") in ids else None
        children.setdefault(parent, []).append(span)

    walked: set[str] = set()

    def walk(parent: str | None, depth: int) -> Iterator[tuple[int, dict[str, Any]]]:
        for span in sorted(children.get(parent, []), key=lambda s: (s["start_ns"], s["end_ns"])):
            yield depth, span
            if span["span_id"] not in walked and span["span_id"] != parent:
                walked.add(span["span_id"])
                yield from walk(span["span_id"], depth + 1)

    yield from walk(None, 0)


def _attributes(attributes: dict[str, Any]) -> str:
    shown = {k: v for k, v in attributes.items() if k not in ("rezerv.hold_id",)}
    return "  ".join(
        f"{k.rsplit('.', 1)[-1]}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
    )


def timeline(hold_id: str, spans: Iterable[dict[str, Any]]) -> list[str]:
    """The lines `rezerv trace` prints for these spans of one booking."""
    spans = list(spans)
    trace_id = trace_id_hex(hold_id)
    if not spans:
        return [f"booking {hold_id}: no spans of trace {trace_id} found"]
    first = min(s["start_ns"] for s in spans)
    last = max(s["end_ns"] for s in spans)
    lines = [
        f"booking {hold_id}  trace {trace_id}  {len(spans)} spans over {(last - first) / 1e6:.1f} ms",
        f"{'start':>10} {'duration':>10}  {'process':<18} span",
    ]
    for depth, span in _in_tree_order(spans):
        start = (span["start_ns"] - first) / 1e6
        took = (span["end_ns"] - span["start_ns"]) / 1e6
        name = "  " * depth + span["name"]
        extra = _attributes(span.get("attributes") or {})
        lines.append(
            f"{start:>+8.1f}ms {took:>8.1f}ms  {span.get('service', ''):<18} {name}{'  ' + extra if extra else ''}"
        )
    return lines


def run_trace(hold_id: str, settings: Settings | None = None) -> int:
    settings = settings or Settings.from_env()
    if settings.otlp_endpoint:
        print(
            f"rezerv trace: spans go to {settings.otlp_endpoint} (REZERV_OTLP_ENDPOINT), not to local files: "
            f"look the trace up there (trace id {trace_id_hex(hold_id)})",
            file=sys.stderr,
        )
        return 2
    directory = settings.traces_path
    if not directory.is_dir():
        print(
            f"rezerv trace: no span files in {directory}: is tracing on (REZERV_TRACE_SAMPLE > 0) in the running "
            f"rezerv, and is REZERV_DATA_DIR (or REZERV_TRACE_DIR) the same here?",
            file=sys.stderr,
        )
        return 1
    spans = read_spans(directory, trace_id_hex(hold_id))
    for line in timeline(hold_id, spans):
        print(line)
    if not spans:
        print(
            f"(REZERV_TRACE_SAMPLE={settings.trace_sample} here: only that fraction of bookings is traced)",
            file=sys.stderr,
        )
        return 1
    return 0
