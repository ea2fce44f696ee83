"""One trace per booking, across the processes a booking passes through (OpenTelemetry).

The trace of a booking is a function of its hold id: its trace id and the span id of its root
(the HTTP request that held it) are hashed from the hold id. So every process that knows the
hold id (the API, the outbox relay, the saga's workers) finds the same trace and decides the
same way whether it is sampled (REZERV_TRACE_SAMPLE, the fraction of hold ids whose trace id
falls under the bound, as OpenTelemetry's TraceIdRatioBased sampler decides), and the event log
needs no column for a trace context. `rezerv trace HOLD_ID` computes the trace id the same way.
Across Kafka the context travels as a W3C `traceparent` header of the sampled messages (the
relay puts it there; the consumers take it from there), which is what links a consumer's spans
to the publish that delivered them.

Spans of one booking:
    POST /events/{event_id}/holds           the API (root)
      engine call                             the API's client: queued, sent, answered
        shard apply / group commit            the shard's stages, reported with the answer
    outbox relay <Type>                       from the event's commit to the broker's ack
      kafka <topic> -> <consumer>             from the publish to the fetch
      <consumer> <Type>                       the payment worker: the payment and the confirmation

Cost when off (the default): every hook is behind the one boolean `ENABLED`; nothing is
allocated, hashed or propagated. When on, every hold request hashes its hold id (~1 us), and
only sampled bookings build spans. Spans are exported in the background (BatchSpanProcessor):
over OTLP/HTTP to REZERV_OTLP_ENDPOINT, or else as JSON lines in REZERV_TRACE_DIR (a file per
process), which `rezerv trace` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ENABLED = False
"""True when this process traces (REZERV_TRACE_SAMPLE > 0): the one check every hook makes."""

TRACEPARENT = "traceparent"
_LOW_64 = (1 << 64) - 1
_bound = 0
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_propagator = TraceContextTextMapPropagator()


# ---- the booking's ids -----------------------------------------------------------------------------
def booking_ids(hold_id: str) -> tuple[int, int]:
    """(trace id, root span id) of the booking `hold_id`: the same in every process."""
    digest = hashlib.blake2b(hold_id.encode(), digest_size=24, person=b"rezerv-trace").digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


def trace_id_hex(hold_id: str) -> str:
    return f"{booking_ids(hold_id)[0]:032x}"


def is_sampled(hold_id: str) -> bool:
    """Is this booking traced? The same answer everywhere (a bound on the trace id's low 64 bits)."""
    return ENABLED and (booking_ids(hold_id)[0] & _LOW_64) < _bound


def booking_context(hold_id: str) -> Context:
    """The context of the booking's root span, as a parent for spans of later steps."""
    trace_id, span_id = booking_ids(hold_id)
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


class _BookingIds(RandomIdGenerator):
    """Random ids, except for a booking's root span: its ids are the booking's (`booking_ids`)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def force(self, ids: tuple[int, int]) -> None:
        self.local.ids = ids

    def generate_trace_id(self) -> int:
        ids = getattr(self.local, "ids", None)
        return ids[0] if ids else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self.local, "ids", None)
        if ids:
            self.local.ids = None
            return int(ids[1])
        return super().generate_span_id()


_ids = _BookingIds()


# ---- set-up -------------------------------------------------------------------------------------
def configure(sample: float, service: str, otlp_endpoint: str = "", trace_dir: Path | None = None) -> None:
    """Turn tracing on for this process (sample > 0) or off, exporting over OTLP or to a file."""
    global ENABLED, _bound, _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
    ENABLED = sample > 0
    _bound = min(int(sample * (1 << 64)), 1 << 64)
    _tracer = None
    if not ENABLED:
        return
    exporter: SpanExporter
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
    else:
        directory = trace_dir or Path("traces")
        exporter = JsonLinesExporter(directory / f"{service}-{os.getpid()}.jsonl")
    provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=_ids)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    _provider = provider
    _tracer = provider.get_tracer("rezerv")


def configure_from(settings: Any, service: str) -> None:
    """`configure` from a Settings object (REZERV_TRACE_SAMPLE, REZERV_OTLP_ENDPOINT, REZERV_TRACE_DIR)."""
    configure(settings.trace_sample, service, settings.otlp_endpoint, settings.traces_path)


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def _span(name: str, parent: Context, start_ns: int, kind: SpanKind = SpanKind.INTERNAL, **attrs: Any) -> Span:
    assert _tracer is not None
    return _tracer.start_span(name, context=parent, kind=kind, start_time=start_ns, attributes=attrs)


def _closed(name: str, parent: Context, start_ns: int, end_ns: int, **attrs: Any) -> Span:
    span = _span(name, parent, start_ns, **attrs)
    span.end(end_time=max(end_ns, start_ns))
    return span


# ---- the API: the request, and its engine call ---------------------------------------------------
class RequestTrace:
    """The root span of a sampled booking's HTTP request; the engine client adds its call to it."""

    __slots__ = ("context", "span")

    def __init__(self, name: str, hold_id: str, now_ns: int) -> None:
        assert _tracer is not None
        _ids.force(booking_ids(hold_id))
        self.span = _tracer.start_span(
            name, kind=SpanKind.SERVER, start_time=now_ns, attributes={"rezerv.hold_id": hold_id}
        )
        self.context = trace.set_span_in_context(self.span)

    def finish(self, status: int, end_ns: int) -> None:
        self.span.set_attribute("http.response.status_code", status)
        self.span.end(end_time=end_ns)


def start_request(name: str, hold_id: str, now_ns: int) -> RequestTrace | None:
    """The request's root span if the booking is sampled (call only when ENABLED)."""
    return RequestTrace(name, hold_id, now_ns) if is_sampled(hold_id) else None


def record_call(
    traces: Iterable[tuple[RequestTrace, int]],
    sent_ns: int,
    answered_ns: int,
    stages: dict[str, int] | None,
    shard: int,
    batch: int,
) -> None:
    """Spans of one engine call for each sampled request in it: (trace, queued at) pairs.

    The shard's stages (actors/shard.py) come with its answer, in its wall clock."""
    for request, queued_ns in traces:
        call = _span("engine call", request.context, queued_ns, kind=SpanKind.CLIENT, shard=shard, batch=batch)
        call.set_attribute("rezerv.queued_ms", (sent_ns - queued_ns) / 1e6)
        inside = trace.set_span_in_context(call)
        if stages:
            received = stages.get("received_ns", sent_ns)
            applied = stages.get("applied_ns", received)
            _closed("shard apply", inside, received, applied, batch=batch)
            if stages.get("commit_started_ns"):
                _closed(
                    "group commit",
                    inside,
                    stages["commit_started_ns"],
                    stages["commit_ended_ns"],
                    events=stages.get("commit_events", 0),
                )
        call.end(end_time=answered_ns)


# ---- the outbox relay ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Publishing:
    """A sampled message being published: its span, ended when the broker acknowledged it."""

    span: Span


def traced_headers(
    hold_id: str, event_type: str, topic: str, recorded_at_ms: int, headers: Sequence[tuple[str, bytes]]
) -> tuple[tuple[tuple[str, bytes], ...], Publishing] | None:
    """For a message of a sampled booking: its headers with `traceparent`, and the publish span
    (from the event's commit); None when the booking is not sampled."""
    if not is_sampled(hold_id):
        return None
    span = _span(
        f"outbox relay {event_type}",
        booking_context(hold_id),
        recorded_at_ms * 1_000_000,
        kind=SpanKind.PRODUCER,
        **{"messaging.destination.name": topic},
    )
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    extra = tuple((name, value.encode()) for name, value in carrier.items())
    return (*tuple(headers), *extra), Publishing(span)


def published(publishing: Iterable[Publishing], acked_ns: int) -> None:
    for one in publishing:
        one.span.end(end_time=acked_ns)


# ---- the consumers --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Delivered:
    """A sampled message a consumer fetched: the context from its header, and its publish time."""

    traceparent: str
    event_type: str
    published_ms: int


def header_traceparent(headers: Sequence[tuple[str, bytes]]) -> str | None:
    for name, value in headers:
        if name == TRACEPARENT:
            return bytes(value).decode("ascii", "replace")
    return None


def record_consumed(
    consumer: str, topic: str, delivered: Iterable[Delivered], fetched_ns: int, started_ns: int, ended_ns: int
) -> None:
    """Spans of a handled batch for each sampled message in it: the broker hop, then the handling."""
    for message in delivered:
        parent = _propagator.extract({TRACEPARENT: message.traceparent})
        _closed(f"kafka {topic} -> {consumer}", parent, message.published_ms * 1_000_000, fetched_ns)
        _closed(f"{consumer} {message.event_type}", parent, started_ns, ended_ns, consumer=consumer)


# ---- the local file ------------------------------------------------------------------------------
class JsonLinesExporter(SpanExporter):  # type: ignore[misc]
    """Spans as JSON lines in one file per process (what `rezerv trace` reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_record(span), separators=(",", ":")) for span in spans]
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write("\n".join(lines) + "\n")
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "name": span.name,
        "service": span.resource.attributes.get("service.name", ""),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
    }
