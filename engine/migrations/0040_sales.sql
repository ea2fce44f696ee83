-- The sales read model (engine/sales.py), kept by the sales consumer from the bookings topic.
-- sales_holds: per hold, what it is worth and the states it has reached (a bit mask); a batch
-- moves the counters only for the bits a hold gains, so a message delivered twice counts once.
CREATE TABLE sales_holds (
    hold_id text PRIMARY KEY,
    entity  text NOT NULL,
    units   integer NOT NULL,
    amount  bigint NOT NULL,
    reached integer NOT NULL
);

-- sales: per event or car, counters that only grow (net figures are differences).
CREATE TABLE sales (
    entity             text PRIMARY KEY,
    held_bookings      bigint NOT NULL DEFAULT 0,
    held_units         bigint NOT NULL DEFAULT 0,
    confirmed_bookings bigint NOT NULL DEFAULT 0,
    sold_units         bigint NOT NULL DEFAULT 0,
    revenue            bigint NOT NULL DEFAULT 0,
    cancelled_bookings bigint NOT NULL DEFAULT 0,
    cancelled_units    bigint NOT NULL DEFAULT 0,
    cancelled_amount   bigint NOT NULL DEFAULT 0,
    released_units     bigint NOT NULL DEFAULT 0,
    expired            bigint NOT NULL DEFAULT 0,
    payment_failed     bigint NOT NULL DEFAULT 0,
    payment_policy     bigint NOT NULL DEFAULT 0,
    by_customer        bigint NOT NULL DEFAULT 0,
    by_admin           bigint NOT NULL DEFAULT 0,
    other              bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sales_by_revenue ON sales (revenue DESC, held_bookings DESC, entity);
