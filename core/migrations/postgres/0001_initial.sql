-- exgate store on PostgreSQL, schema version 1: the same logical schema as SQLite's versions 1 to 3
-- (core/migrations/sqlite/), so that `exgate-server store migrate` copies rows as they are.
-- Secrets live only in the `*_sealed` BYTEA columns, sealed by the vault with the row's ID as
-- associated data; every other column is plain metadata. Timestamps are RFC 3339 text in UTC and
-- IDs are UUID text, as in SQLite, so that both backends share one row mapping.
-- Accounts, static users, tokens and bridge users may belong to a connection declared in a
-- configuration file, which has no row here; so they carry the connection's ID without a foreign
-- key, and deleting a connection deletes them in the same transaction.
-- Connection names are unique without regard to case: exgate folds them (`name_folded`) and the
-- unique constraint is on the folded value, not on a collation.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE connections (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    name_folded   TEXT NOT NULL UNIQUE,
    -- target, backend, authority and the non-secret parts of auth, as JSON
    doc           TEXT NOT NULL,
    -- the client secret, the certificate's private key, or the password
    secret_sealed BYTEA,
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
    refresh_token_sealed BYTEA,
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

CREATE TABLE access_tokens (
    connection_id TEXT NOT NULL,
    -- '' for an app-only connection's own token
    account_id    TEXT NOT NULL,
    resource      TEXT NOT NULL,
    token_sealed  BYTEA NOT NULL,
    expires_at    TEXT NOT NULL,
    refresh_at    TEXT NOT NULL,
    PRIMARY KEY (connection_id, account_id, resource)
);
CREATE INDEX access_tokens_account ON access_tokens (account_id);

-- API keys: only the SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,
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

-- The local bridge's users (see SQLite's version 3).
CREATE TABLE bridge_users (
    username      TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    principal     TEXT,
    mailbox       TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX bridge_users_connection ON bridge_users (connection_id);
