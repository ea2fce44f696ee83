-- The tables of a lock-based baseline (loadtest/baselines/), in their own schema `baseline` (the
-- app's connections set search_path to it), so they never meet rezerv's tables of the same names.
-- One database per strategy. Money is integer minor units; times are epoch milliseconds.
CREATE SCHEMA IF NOT EXISTS baseline;
CREATE TABLE IF NOT EXISTS events (
    event_id        text PRIMARY KEY,
    title           text   NOT NULL,
    max_per_booking integer NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS tiers (
    event_id  text    NOT NULL REFERENCES events,
    tier      text    NOT NULL,
    price     bigint  NOT NULL,
    quantity  bigint  NOT NULL,
    remaining bigint  NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (event_id, tier)
);

CREATE TABLE IF NOT EXISTS capacity_changes (
    event_id  text NOT NULL,
    change_id text NOT NULL,
    tier      text NOT NULL,
    quantity  bigint NOT NULL,
    PRIMARY KEY (event_id, change_id)
);

CREATE TABLE IF NOT EXISTS wallets (
    customer_id text   PRIMARY KEY,
    balance     bigint NOT NULL CHECK (balance >= 0)
);

-- Every money movement: deposits (ref = deposit id), charges and refunds (ref = hold id).
CREATE TABLE IF NOT EXISTS ledger (
    position    bigint GENERATED ALWAYS AS IDENTITY,
    customer_id text   NOT NULL,
    kind        text   NOT NULL CHECK (kind IN ('deposit', 'charge', 'refund')),
    ref         text   NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    UNIQUE (customer_id, kind, ref)
);

-- A booking is confirmed in the transaction that reserves and charges it.
CREATE TABLE IF NOT EXISTS bookings (
    hold_id         text    PRIMARY KEY,
    customer_id     text    NOT NULL,
    event_id        text    NOT NULL,
    idempotency_key text    NOT NULL,
    quantities      text    NOT NULL,  -- "tier:count,..." sorted by tier
    quantity        integer NOT NULL,
    amount          bigint  NOT NULL,
    status          text    NOT NULL,
    created_at      bigint  NOT NULL,
    expires_at      bigint  NOT NULL,
    UNIQUE (customer_id, event_id, idempotency_key)
);
