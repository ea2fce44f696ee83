-- Top-ups (engine/topups.py): opened PENDING when a customer asks, CREDITED when the payment
-- provider's signed callback for `provider_ref` has been credited to the wallet (as the deposit
-- 'topup-<provider_ref>'). `created_at` (epoch ms) counts toward the 24-hour limit.
CREATE TABLE topups (
    topup_id     text   PRIMARY KEY,
    customer_id  text   NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    status       text   NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'CREDITED')),
    provider_ref text   UNIQUE,
    checkout_url text   NOT NULL DEFAULT '',
    created_at   bigint NOT NULL,
    credited_at  bigint
);
CREATE INDEX topups_customer_idx ON topups (customer_id, created_at);
