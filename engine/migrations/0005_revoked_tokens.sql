-- Revoked API tokens, by their id (the JWT `jti`). Every API worker loads the ids whose
-- `expires_at` is still ahead (api/revocation.py); after that moment the token itself has
-- expired, so the row may be deleted.
CREATE TABLE revoked_tokens (
    token_id   text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    reason     text NOT NULL DEFAULT ''
);

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
