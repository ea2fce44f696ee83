"""The consumer's pure part: which messages of a fetched batch to act on, in which order, and
which offsets the batch spans (engine/adapters/kafka_consumer.py). No broker here."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from engine.adapters.kafka_consumer import (
    Undecodable,
    decode_batch,
    decode_message,
    fence_offsets,
    saga_topic_partitions,
    select_fresh,
)
from engine.adapters.kafka_topics import TOPICS
from engine.domain import codec
from engine.domain.events import HoldExpired
from engine.outbox import OutboxMessage


def msg(stream: str, version: int) -> OutboxMessage:
    return OutboxMessage(f"{stream}@{version}", stream, version, "HoldExpired", b"payload", 1_800_000_000_000)


def ids(messages: list[OutboxMessage]) -> list[str]:
    return [m.message_id for m in messages]


def record(partition: int, offset: int, value: bytes | None, topic: str = "t") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"key", value, None, 3, len(value or b""), ())


def test_select_fresh_keeps_the_order_and_the_first_of_each_id() -> None:
    a1, a2, b1 = msg("a", 1), msg("a", 2), msg("b", 1)
    assert ids(select_fresh([a1, b1, a1, a2, b1], set())) == ["a@1", "b@1", "a@2"]


def test_select_fresh_drops_what_was_already_processed() -> None:
    batch = [msg("a", 1), msg("a", 2), msg("a", 3), msg("b", 1)]
    assert ids(select_fresh(batch, {"a@2", "b@1", "unrelated@9"})) == ["a@1", "a@3"]
    assert select_fresh(batch, {"a@1", "a@2", "a@3", "b@1"}) == []
    assert select_fresh([], {"a@1"}) == []


def test_select_fresh_does_not_change_its_inputs() -> None:
    batch = [msg("a", 1), msg("a", 1)]
    done = frozenset({"x@1"})
    select_fresh(batch, done)
    assert ids(batch) == ["a@1", "a@1"]
    assert done == {"x@1"}


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 6)), max_size=40),
    st.sets(st.tuples(st.sampled_from("abc"), st.integers(1, 6)), max_size=10),
)
def test_select_fresh_is_the_unprocessed_ids_once_in_first_seen_order(
    batch: list[tuple[str, int]], done: set[tuple[str, int]]
) -> None:
    messages = [msg(s, v) for s, v in batch]
    processed = {f"{s}@{v}" for s, v in done}
    fresh = ids(select_fresh(messages, processed))
    expected = [i for i in dict.fromkeys(ids(messages)) if i not in processed]
    assert fresh == expected


def test_decode_message_gives_the_outbox_message_or_the_reason_it_is_not_one() -> None:
    good = msg("a", 1)
    assert decode_message(codec.encode(good)) == good
    assert isinstance(decode_message(b"\xc1 not msgpack"), str)
    assert decode_message(None) == "no value"
    other = codec.encode(HoldExpired("event/1", "h1", 0))
    assert decode_message(other) == "not an OutboxMessage: HoldExpired"
    assert isinstance(decode_message(codec.encode({"message_id": "a@1"})), str)


def test_decode_batch_orders_by_partition_then_offset_and_spans_every_record() -> None:
    p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    records = {
        p1: [record(1, 7, codec.encode(msg("b", 1))), record(1, 8, codec.encode(msg("b", 2)))],
        p0: [
            record(0, 3, codec.encode(msg("a", 1))),
            record(0, 4, b"garbage"),
            record(0, 5, codec.encode(msg("a", 2))),
            record(0, 6, codec.encode(msg("a", 1))),  # a re-send, later in the same batch
        ],
    }
    batch = decode_batch(records)
    assert ids(batch.messages) == ["a@1", "a@2", "a@1", "b@1", "b@2"]
    assert batch.message_ids == ["a@1", "a@2", "b@1", "b@2"]
    assert [(u.topic, u.partition, u.offset) for u in batch.undecodable] == [("t", 0, 4)]
    assert isinstance(batch.undecodable[0], Undecodable)
    assert batch.starts == {p0: 3, p1: 7}
    assert batch.ends == {p0: 7, p1: 9}, "the undecodable record's offset is committed with the rest"


def test_decode_batch_of_only_undecodable_records_still_moves_past_them() -> None:
    p0 = TopicPartition("t", 0)
    batch = decode_batch({p0: [record(0, 0, b"x"), record(0, 1, None)], TopicPartition("t", 1): []})
    assert batch.messages == []
    assert batch.message_ids == []
    assert len(batch.undecodable) == 2
    assert batch.starts == {p0: 0}
    assert batch.ends == {p0: 2}


def test_a_saga_topic_is_created_with_its_partition_count_with_or_without_a_deployment_prefix() -> None:
    assert saga_topic_partitions("bookings") == TOPICS["bookings"]
    assert saga_topic_partitions("ci-7f3a.bookings") == TOPICS["bookings"]
    for other in ("audit", "payments"):  # "payments" carried refunds until 2026-12-04
        with pytest.raises(ValueError, match="pass `partitions`"):
            saga_topic_partitions(other)


def test_positions_past_the_end_of_the_log_are_noticed() -> None:
    from aiokafka import TopicPartition

    from engine.adapters.kafka_consumer import beyond_the_end

    a, b, c = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)
    positions = {a: 12, b: 3, c: 0}
    ends = {a: 3, b: 3, c: 5}
    assert beyond_the_end(positions, ends) == [a]
    assert beyond_the_end({b: 3}, {b: 3}) == []  # at the end: caught up, not lost


def typed(partition: int, offset: int, value: bytes, kind: str | None) -> ConsumerRecord[bytes, bytes]:
    headers = () if kind is None else (("type", kind.encode()),)
    return ConsumerRecord("t", partition, offset, 0, 0, b"key", value, None, 3, len(value), headers)


def test_records_of_types_the_consumer_does_not_act_on_are_skipped_undecoded_but_committed() -> None:
    p0 = TopicPartition("t", 0)
    records = {
        p0: [
            typed(0, 10, codec.encode(msg("a", 1)), "HoldExpired"),
            typed(0, 11, b"not even decodable", "BookingConfirmed"),
            typed(0, 12, codec.encode(msg("a", 2)), None),  # no header: decoded, filtered later by type
        ]
    }
    batch = decode_batch(records, frozenset({"HoldExpired"}))
    assert ids(batch.messages) == ["a@1", "a@2"]
    assert batch.undecodable == []
    assert batch.skipped == 1
    assert batch.ends == {p0: 13}
    everything = decode_batch(records)
    assert everything.skipped == 0
    assert len(everything.undecodable) == 1


A, B, C = (TopicPartition("bookings", n) for n in range(3))


def test_a_fence_carries_the_previous_batchs_ends_when_the_membership_is_the_same() -> None:
    pending = ("membership 1", {A: 10, B: 7})
    assert fence_offsets(pending, "membership 1", {A: 10, C: 3}) == {A: 10, B: 7, C: 3}


def test_a_fence_under_another_membership_commits_only_its_own_starts() -> None:
    pending = ("membership 1", {A: 10, B: 7})
    assert fence_offsets(pending, "membership 2", {A: 4}) == {A: 4}
    assert fence_offsets(None, "membership 1", {A: 4}) == {A: 4}


def test_a_fence_after_a_seek_back_commits_the_new_start_not_the_old_end() -> None:
    assert fence_offsets(("m", {A: 10}), "m", {A: 0}) == {A: 0}


@given(
    st.dictionaries(st.integers(0, 5), st.integers(0, 100)),
    st.dictionaries(st.integers(0, 5), st.integers(0, 100), min_size=1),
)
def test_a_fence_never_commits_a_partition_neither_batch_read(ends: dict[int, int], starts: dict[int, int]) -> None:
    def tps(offsets: dict[int, int]) -> dict[TopicPartition, int]:
        return {TopicPartition("bookings", n): offset for n, offset in offsets.items()}

    fence = fence_offsets(("m", tps(ends)), "m", tps(starts))
    assert set(fence) == set(tps(ends)) | set(tps(starts))
    assert all(fence[tp] == offset for tp, offset in tps(starts).items())
