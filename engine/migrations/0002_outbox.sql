-- Where each reader of the event log (the outbox relay, later the projections) has got to.
-- A checkpoint is the (txid, position) of the last event the reader has finished with: readers
-- read in (txid, position) order, only below the oldest transaction still in flight, so every
-- event after the checkpoint is one the reader has not handled (see engine/adapters/pg_log.py).
-- Saves only move a checkpoint forward.
CREATE TABLE log_checkpoints (
    name       text        PRIMARY KEY,
    txid       xid8        NOT NULL,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Wake the log readers when events are appended: one notification per statement (a group commit
-- of 1,000 events sends one, not 1,000), delivered by PostgreSQL only when the transaction
-- commits. Readers also poll, so a lost notification only delays them. No transition table to
-- skip statements that inserted nothing: it would copy every appended row on the hot path to
-- save a rare, harmless empty wake-up.
CREATE FUNCTION notify_events_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rezerv_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_appended_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT
    EXECUTE FUNCTION notify_events_appended();
