-- The bookings read model: one row per hold (the hold id is also the saga id), written only by
-- the bookings projection (engine/adapters/pg_bookings.py) from the event log, in the same
-- transaction as its checkpoint in `log_checkpoints` (name 'bookings-projection'). Rebuild it by
-- stopping the projection, truncating this table and deleting that checkpoint.
-- Times are epoch milliseconds taken from the events; money is integer minor units.
CREATE TABLE bookings (
    hold_id            text        PRIMARY KEY,
    kind               text        NOT NULL CHECK (kind IN ('event', 'car')),
    entity_id          text        NOT NULL,
    booking_stream     text        NOT NULL,                 -- 'event/<id>' or 'car/<id>'
    customer_id        text        NOT NULL,
    amount             bigint      NOT NULL,
    quantity           integer     NOT NULL,                 -- tickets, or rental days
    status             text        NOT NULL
                       CHECK (status IN ('HELD', 'CONFIRMED', 'RELEASED', 'EXPIRED', 'CANCELLED')),
    reason             text,                                 -- why released/cancelled, else a payment failure's
    expires_at         bigint      NOT NULL,
    held_at            bigint      NOT NULL,
    confirmed_at       bigint,
    released_at        bigint,
    expired_at         bigint,
    cancelled_at       bigint,
    hold_version       integer     NOT NULL,                 -- TicketsHeld/CarHeld in booking_stream
    terminal_version   integer,                              -- HoldReleased/HoldExpired/BookingCancelled
    payment_status     text        NOT NULL DEFAULT 'NONE'
                       CHECK (payment_status IN ('NONE', 'SUCCEEDED', 'FAILED', 'REFUNDED')),
    payment_reason     text,                                 -- the failure's or the refund's reason
    payment_decided_at bigint,
    payment_version    integer,                              -- the decision in 'payment/<hold_id>'
    refunded_at        bigint,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The saga supervisor's queries each look for a small, changing set of rows (the stuck ones) in a
-- table that only grows and is mostly settled bookings. Partial indexes hold just those rows, so
-- each query reads a short index in time order and the settled majority costs them nothing.
-- The predicates are written exactly as in the queries (literals, not parameters), which is what
-- lets the planner use them.

-- Held and no payment decision yet: the hold event may not have reached the payment worker.
CREATE INDEX bookings_undecided_idx ON bookings (held_at)
    WHERE status = 'HELD' AND payment_status = 'NONE';

-- Decided but still held: the decision may not have reached the booking's entity.
CREATE INDEX bookings_undelivered_idx ON bookings (payment_decided_at)
    WHERE status = 'HELD' AND payment_status IN ('SUCCEEDED', 'FAILED');

-- Paid, then released, expired or cancelled, and not refunded yet.
CREATE INDEX bookings_unrefunded_idx ON bookings ((coalesce(released_at, expired_at, cancelled_at)))
    WHERE payment_status = 'SUCCEEDED' AND status IN ('RELEASED', 'EXPIRED', 'CANCELLED');

-- Held past its expiry: the entity's own expiry timer may have been lost with its host.
CREATE INDEX bookings_held_expiry_idx ON bookings (expires_at) WHERE status = 'HELD';

-- A customer's bookings, newest first.
CREATE INDEX bookings_customer_idx ON bookings (customer_id, held_at DESC);
