-- The ledger read model: one row per movement of money in a wallet (deposit, charge, refund,
-- withdrawal), keyed by the event's place in its stream 'wallet/<wallet_id>', with the balance
-- after it. Written only by the ledger projection (engine/adapters/pg_ledger.py) from the event
-- log, in the same transaction as its checkpoint in `log_checkpoints` ('ledger-projection').
-- Rebuild it by stopping the projection, truncating this table and deleting that checkpoint.
-- Amounts are signed minor units (+ in, - out); times are epoch milliseconds from the events.
CREATE TABLE ledger_entries (
    wallet_id text    NOT NULL,
    version   integer NOT NULL,
    kind      text    NOT NULL CHECK (kind IN ('deposit', 'charge', 'refund', 'withdrawal')),
    reference text    NOT NULL,                -- deposit id, hold id (= saga id) or withdrawal id
    amount    bigint  NOT NULL,
    balance   bigint  NOT NULL,                -- the wallet's balance after this entry
    at        bigint  NOT NULL,
    detail    text    NOT NULL DEFAULT '',     -- a deposit's source and reason, a refund's reason
    PRIMARY KEY (wallet_id, version)           -- also the statement's order and its cursor
);
