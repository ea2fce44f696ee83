-- Settled records (bookings, payments) an entity moved out of memory, by stream and key (a hold
-- id or a saga id); `record` is the entity's own encoding. A host writes them under its fencing
-- token: the put reads the stream's `streams` row FOR SHARE in the same statement, so a claim
-- cannot slip in between the check and the write (engine/adapters/pg_event_store.py).
-- `keep_until` (epoch ms) is when a row may be forgotten; the index serves that sweep.
CREATE TABLE record_archive (
    stream_id  text   NOT NULL,
    key        text   NOT NULL,
    record     bytea  NOT NULL,
    keep_until bigint NOT NULL,
    PRIMARY KEY (stream_id, key)
);
CREATE INDEX record_archive_keep_until_idx ON record_archive (keep_until);
