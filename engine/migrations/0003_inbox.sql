-- Messages a consumer has acted on, written in the same transaction as the events the message
-- caused (engine/adapters/pg_event_store.py). A consumer drops any message already recorded
-- here, which is how a redelivered Kafka message changes nothing twice.
CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    stream_id    text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX processed_messages_at_idx ON processed_messages (processed_at);
