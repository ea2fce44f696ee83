"""What the outbox relay publishes: which events go to which topic under which key, and the message.

Pure, no I/O: the relay loop (engine/relay.py) reads a batch of the log, calls `plan_batch`, and
hands the result to a `Publisher` (engine/adapters/kafka_bus.py), the pattern of aiokafka's
transactional example with the processing apart from the I/O.

Message format (for consumers):
- value: ``codec.encode(OutboxMessage(...))``; `payload` is the event's stored bytes, so
  ``codec.decode_record(message.payload)`` gives the domain event.
- key: the hold id, UTF-8. One key always lands on one partition, and the relay publishes a key's
  events in log order, so a consumer sees one booking's messages in order.
- headers: ``("type", event type)``, ``("message_id", "<stream_id>@<version>")``.
- Delivery is at least once: after a crash or a broker error a batch is sent again. Consumers
  remove duplicates by `message_id` (stable across re-sends, unique in the whole log). Order is
  per key only: one stream's messages for different keys (two holds on one concert) sit on
  different partitions and may be consumed out of stream order, so "drop versions not above the
  last one seen for the stream" would drop real messages.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from engine.domain import codec
from engine.log import LoggedEvent

RELAY_NAME = "outbox-relay"
"""The outbox relay's checkpoint name in `log_checkpoints`."""

BOOKINGS_TOPIC = "bookings"


@codec.register()
@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """The value of every message the relay publishes."""

    message_id: str
    stream_id: str
    version: int
    event_type: str
    payload: bytes
    recorded_at_ms: int


class Route(NamedTuple):
    topic: str
    key_field: str  # the field of the decoded event whose value is the message key


_BOOKING = Route(BOOKINGS_TOPIC, "hold_id")

ROUTES: Mapping[str, Route] = {
    "TicketsHeld": _BOOKING,
    "CarHeld": _BOOKING,
    "HoldReleased": _BOOKING,
    "HoldExpired": _BOOKING,
    "BookingCancelled": _BOOKING,
}
"""Event type -> where it is published: what the payment worker acts on (engine/saga.py,
PAYMENT_EVENT_TYPES; a test holds the two together), the topic's one consumer group. Any other
type (EventCreated, wallet events, ...) is not published; the relay's checkpoint still moves past
it. The payment decisions (PaymentSucceeded, PaymentFailed) are not published since 2026-12-01: the
payment worker completes the booking itself right after the wallet decides. Nor, since 2026-12-04,
are confirmations (BookingConfirmed) and refunds (PaymentRefunded): the notifier and the sales
read model, their consumers, read them from the log (engine/log_consumer.py)."""


class OutgoingMessage(NamedTuple):
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class PublishFailed(RuntimeError):
    """The broker did not acknowledge every message of a batch; some may have been delivered.

    Transient by nature (broker down, restarted, topic missing): the relay sends the batch again."""


def message_id(stream_id: str, version: int) -> str:
    return f"{stream_id}@{version}"


def routing_key(event: LoggedEvent, key_field: str) -> str:
    """The event's `key_field` value, read from its decoded payload.

    Tolerant on purpose, because one event the relay cannot key must not stop the whole outbox:
    if the payload does not decode in this process (its class is not imported or is newer) or
    has no such string field, the key is the stream id, which still keeps the stream in order.
    The relay's process must therefore import the modules registering the routed events."""
    try:
        decoded = codec.decode_record(event.data)
    except codec.CodecError:
        return event.stream_id
    value = getattr(decoded, key_field, None)
    return value if isinstance(value, str) and value else event.stream_id


def outbox_message(event: LoggedEvent) -> OutboxMessage:
    """The message of a logged event, as a consumer of the topics receives it (its value)."""
    mid = message_id(event.stream_id, event.version)
    return OutboxMessage(mid, event.stream_id, event.version, event.event_type, event.data, event.recorded_at_ms)


def plan_message(event: LoggedEvent) -> OutgoingMessage | None:
    """The message publishing `event`, or None if its type is not published."""
    route = ROUTES.get(event.event_type)
    if route is None:
        return None
    value = outbox_message(event)
    headers = (("type", event.event_type.encode()), ("message_id", value.message_id.encode()))
    return OutgoingMessage(route.topic, routing_key(event, route.key_field).encode(), codec.encode(value), headers)


# ---- topic generations ---------------------------------------------------------------------------
# The broker need not keep the saga's messages once every consumer has acted on them. Apache Kafka
# would drop them by retention; the embedded broker (tansu, memory only) supports neither retention
# nor record deletion, so every message would stay until it restarts: at 2,000 bookings/s it grew by
# ~4 MB/s. So each topic is written in generations: ``bookings.g<N>``, N counting fixed periods of
# wall-clock time. A publisher writes to the generation of the moment it publishes; a consumer
# reads every generation until it has drained it; a generation every consumer has drained is
# deleted (engine/adapters/kafka_generations.py). With a period of 0 there are no generations: the
# plain topic names are used, for a broker whose own retention does the job.
GENERATION_MARK = ".g"


def generation_at(now_ms: int, period_ms: int) -> int:
    """The generation a message published at `now_ms` goes to."""
    return now_ms // period_ms


def generation_topic(topic: str, generation: int | None) -> str:
    """`topic` in `generation` ("bookings" -> "bookings.g29933432"); `topic` itself for None."""
    return topic if generation is None else f"{topic}{GENERATION_MARK}{generation}"


def split_generation(name: str) -> tuple[str, int] | None:
    """(topic, generation) of a generation's topic name; None for any other name."""
    topic, mark, number = name.rpartition(GENERATION_MARK)
    if not mark or not topic or not number.isdigit():
        return None
    return topic, int(number)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a key's messages go to: the same for one key always (per-key order), spread
    over all of them. CRC-32 (C speed, zlib) rather than Kafka's murmur2, which aiokafka computes
    in Python per message: every producer of these topics (the relay, the saga supervisor) uses
    this function, which is all that per-key order needs."""
    return zlib.crc32(key) % partitions


def by_partition(
    messages: Sequence[OutgoingMessage], partitions: Mapping[str, int]
) -> dict[tuple[str, int], list[OutgoingMessage]]:
    """The messages grouped by (topic, partition), each group in the order given (so per key in
    log order); `partitions` is each topic's partition count."""
    groups: dict[tuple[str, int], list[OutgoingMessage]] = {}
    for message in messages:
        target = (message.topic, partition_of(message.key, partitions[message.topic]))
        groups.setdefault(target, []).append(message)
    return groups


def plan_batch(events: Sequence[LoggedEvent]) -> list[OutgoingMessage]:
    """The messages for a batch of the log, in log order (so per key in order)."""
    planned = (plan_message(event) for event in events)
    return [message for message in planned if message is not None]
