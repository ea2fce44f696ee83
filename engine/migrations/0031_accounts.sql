-- Accounts (engine/accounts.py): a login name (email or username, lower case) and its argon2id
-- hash. `account_id` is the customer id, the subject of the account's access tokens.
CREATE TABLE accounts (
    account_id    text        PRIMARY KEY,
    login         text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('customer', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens, only as the SHA-256 of the token. A family is one log-in and every token that
-- rotation made from it; `used_at` marks a token rotated (presenting it again revokes the family),
-- `revoked_at` a token logged out or revoked with its family. `access_jti` is the access token
-- issued with it, revoked with the family.
CREATE TABLE refresh_tokens (
    token_hash        text        PRIMARY KEY,
    family_id         text        NOT NULL,
    account_id        text        NOT NULL REFERENCES accounts (account_id),
    expires_at        bigint      NOT NULL,          -- epoch ms; the family's end
    access_jti        text        NOT NULL,
    access_expires_at bigint      NOT NULL,
    issued_at         timestamptz NOT NULL DEFAULT now(),
    used_at           timestamptz,
    revoked_at        timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
