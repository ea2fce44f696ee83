-- Notifications (engine/notifications.py): one row per booking outcome, keyed by the outcome's
-- message id (a redelivered message is stored once). `id` grows in the order rows are committed
-- (the notifier inserts under an advisory lock), which lets the live stream follow the table with
-- one cursor. Times are epoch milliseconds.
CREATE TABLE notifications (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     text   NOT NULL UNIQUE,
    customer_id    text   NOT NULL,
    hold_id        text   NOT NULL,
    booking_stream text   NOT NULL,
    outcome        text   NOT NULL CHECK (outcome IN ('CONFIRMED', 'RELEASED', 'EXPIRED', 'CANCELLED', 'REFUNDED')),
    reason         text   NOT NULL DEFAULT '',
    amount         bigint NOT NULL DEFAULT 0,
    at             bigint NOT NULL,
    read_at        bigint
);
-- One index for a customer's pages, the unread filter and the live stream: every index costs the
-- notifier a write per booking, and a customer's notifications are few enough to filter.
CREATE INDEX notifications_customer_idx ON notifications (customer_id, id);

-- A customer's webhook: where its notifications are POSTed, signed with `secret`.
CREATE TABLE webhooks (
    customer_id text        PRIMARY KEY,
    url         text        NOT NULL,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Deliveries still to make (created with their notification, for customers with a webhook), and
-- those given up on after repeated failures.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications (id),
    customer_id     text   NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    last_error      text   NOT NULL DEFAULT ''
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at);

CREATE TABLE webhook_dead_letters (
    notification_id bigint      NOT NULL REFERENCES notifications (id),
    customer_id     text        NOT NULL,
    url             text        NOT NULL,
    attempts        integer     NOT NULL,
    last_error      text        NOT NULL,
    parked_at       bigint      NOT NULL
);
CREATE INDEX webhook_dead_letters_customer_idx ON webhook_dead_letters (customer_id);
