-- exgate store, schema version 1.
-- Secrets live only in the `*_sealed` BLOB columns, sealed by the vault with the row's ID as
-- associated data; every other column is plain metadata.
-- Accounts, static users and tokens may belong to a connection declared in a configuration file,
-- which has no row here; so they carry the connection's ID without a foreign key, and deleting a
-- connection deletes them in the same transaction.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE connections (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- target, backend, authority and the non-secret parts of auth, as JSON
    doc           TEXT NOT NULL,
    -- the client secret, the certificate's private key, or the password
    secret_sealed BLOB,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE accounts (
    id                   TEXT PRIMARY KEY,
    connection_id        TEXT NOT NULL,
    principal            TEXT NOT NULL,
    mailbox              TEXT,
    credential_kind      TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    refresh_token_sealed BLOB,
    created_at           TEXT NOT NULL,
    last_used_at         TEXT,
    UNIQUE (connection_id, principal)
);

CREATE TABLE static_users (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    principal     TEXT NOT NULL,
    mailbox       TEXT NOT NULL,
    access        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (connection_id, principal)
);

-- Access tokens, so a new process (the CLI's `exgate token`) answers from the cache.
CREATE TABLE access_tokens (
    connection_id TEXT NOT NULL,
    -- '' for an app-only connection's own token
    account_id    TEXT NOT NULL,
    resource      TEXT NOT NULL,
    token_sealed  BLOB NOT NULL,
    expires_at    TEXT NOT NULL,
    refresh_at    TEXT NOT NULL,
    PRIMARY KEY (connection_id, account_id, resource)
);

-- API keys: only the SHA-256 of the key is kept (keys are 256 random bits, so a fast hash is
-- enough and lookups by hash are exact).
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    -- '*' for an admin key, else a JSON array of connection IDs
    scope        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE admin_credential (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
