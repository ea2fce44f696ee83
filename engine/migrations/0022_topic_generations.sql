-- Topic generations (engine/outbox.py): which consumers read a topic, seen alive when, and which
-- generations of it each has drained. A generation every live consumer has drained is deleted
-- from the broker, and its rows here with it.
CREATE TABLE bus_consumers (
    consumer text        NOT NULL,
    topic    text        NOT NULL,
    seen_ms  bigint      NOT NULL,
    PRIMARY KEY (consumer, topic)
);

CREATE TABLE bus_drained (
    consumer   text        NOT NULL,
    topic      text        NOT NULL,
    generation bigint      NOT NULL,
    drained_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, generation, consumer)
);
