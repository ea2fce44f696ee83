-- The event store: one stream per entity, (stream_id, version) as optimistic concurrency.
-- `position` orders the whole log; `txid` lets a reader (outbox relay, projections) read only
-- rows whose transaction can no longer be in flight, so no event is skipped when transactions
-- commit out of position order (see engine/adapters/pg_event_store.py).
CREATE TABLE events (
    position    bigint      GENERATED ALWAYS AS IDENTITY,
    stream_id   text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    event_type  text        NOT NULL,
    data        bytea       NOT NULL,
    txid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, version)
);
CREATE UNIQUE INDEX events_txid_position_idx ON events (txid, position);

-- One head row per stream: its current version and the newest fencing token seen for it.
-- Every append updates the head only if the writer's token is not older than the recorded one
-- and its expected version is the head's version; events are inserted only for streams whose
-- head moved, in the same statement. The store checks the token, not the client.
CREATE TABLE streams (
    stream_id  text        PRIMARY KEY,
    version    integer     NOT NULL DEFAULT 0,
    token      bigint      NOT NULL,
    owner      text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The latest snapshot of each stream; an entity is rebuilt from it plus later events.
CREATE TABLE snapshots (
    stream_id text        PRIMARY KEY,
    version   integer     NOT NULL,
    state     bytea       NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
