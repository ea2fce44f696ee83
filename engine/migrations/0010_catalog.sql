-- The catalog read model: what a visitor browses (events with live availability, cars with the
-- days they are taken), written only by the catalog projection (engine/adapters/pg_catalog.py)
-- in the same transaction as its checkpoint in `log_checkpoints` (name 'catalog-projection').
-- Every value comes from the events (times are epoch milliseconds of the events, money integer
-- minor units), so a rebuild from the log (`rezerv projections rebuild catalog`) gives equal rows.

-- One row per ticketed event. `tiers` is the list of tiers in creation order, each
-- {"name", "price", "quantity", "held", "confirmed"}; min_price, max_price and available are
-- derived from it by the projection so that filters and sorts read plain, indexed columns.
CREATE TABLE catalog_events (
    event_id                text        PRIMARY KEY,
    title                   text        NOT NULL,
    venue                   text        NOT NULL,
    starts_at               timestamptz NOT NULL,
    starts_at_local         text        NOT NULL,            -- as created, with its UTC offset
    tiers                   jsonb       NOT NULL,
    min_price               bigint      NOT NULL,
    max_price               bigint      NOT NULL,
    available               bigint      NOT NULL,            -- tickets left over all tiers
    max_tickets_per_booking integer     NOT NULL,
    sales_open              boolean     NOT NULL,
    version                 integer     NOT NULL,            -- the stream version last applied
    created_at              bigint      NOT NULL,
    changed_at              bigint      NOT NULL,            -- time of the last event applied
    search                  tsvector    GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', venue), 'B')
    ) STORED
);

-- Full-text search over title and venue (websearch_to_tsquery('english', ...) in the queries); a
-- word found in the title ranks above one found in the venue.
CREATE INDEX catalog_events_search_idx ON catalog_events USING gin (search);
-- Keyset pagination: every sort is (column, event_id), read in either direction.
CREATE INDEX catalog_events_starts_idx ON catalog_events (starts_at, event_id);
CREATE INDEX catalog_events_price_idx ON catalog_events (min_price, event_id);
CREATE INDEX catalog_events_venue_idx ON catalog_events (lower(venue), starts_at, event_id);

-- The holds still occupying tickets (HELD or CONFIRMED), with their tiers: a release, an expiry
-- or a cancellation names only the hold, and the projection needs to know which tiers to free.
-- A hold leaves this table when it stops occupying tickets.
CREATE TABLE catalog_event_holds (
    event_id   text    NOT NULL,
    hold_id    text    NOT NULL,
    quantities jsonb   NOT NULL,                              -- [[tier, count], ...]
    status     text    NOT NULL CHECK (status IN ('HELD', 'CONFIRMED')),
    PRIMARY KEY (event_id, hold_id)
);

-- One row per rental car.
CREATE TABLE catalog_cars (
    car_id             text    PRIMARY KEY,
    brand              text    NOT NULL,
    model              text    NOT NULL,
    location           text    NOT NULL,
    daily_rate         bigint  NOT NULL,
    min_days           integer NOT NULL,
    discount_from_days integer NOT NULL,
    discount_per_day   bigint  NOT NULL,
    version            integer NOT NULL,
    created_at         bigint  NOT NULL,
    changed_at         bigint  NOT NULL
);
CREATE INDEX catalog_cars_rate_idx ON catalog_cars (daily_rate, car_id);
CREATE INDEX catalog_cars_location_idx ON catalog_cars (lower(location), daily_rate, car_id);
CREATE INDEX catalog_cars_brand_idx ON catalog_cars (lower(brand), daily_rate, car_id);

-- The days each car is taken: held or confirmed bookings and maintenance blocks, as half-open
-- date ranges [start, end) exactly like the entity's calendar. "Free for the whole window" is
-- "no interval overlaps the window", an anti-join the planner serves either from the GiST index
-- (find the intervals overlapping the window, i.e. the busy cars; car_id is included so that
-- needs no table read) or, walking cars in price order, from the primary key (a car's own
-- intervals). Never a scan of the table, never a scan in Python.
CREATE TABLE catalog_car_intervals (
    car_id text      NOT NULL,
    ref    text      NOT NULL,                                -- hold id or block id
    kind   text      NOT NULL CHECK (kind IN ('booking', 'maintenance')),
    period daterange NOT NULL CHECK (NOT isempty(period)),
    PRIMARY KEY (car_id, ref)
);
CREATE INDEX catalog_car_intervals_period_idx ON catalog_car_intervals USING gist (period) INCLUDE (car_id);
