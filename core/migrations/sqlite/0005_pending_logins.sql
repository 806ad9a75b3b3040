-- exgate store, schema version 5: browser sign-ins in flight (see PostgreSQL's 0004), so that a
-- callback finishes a sign-in whichever process started it. Keyed by the SHA-256 of the
-- sign-in's `state` (hex); the rest is one sealed document bound to its row.
CREATE TABLE pending_logins (
    state_hash    TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL UNIQUE,
    connection_id TEXT NOT NULL,
    principal     TEXT,
    started_unix  INTEGER NOT NULL,
    payload_sealed BLOB NOT NULL
);
CREATE INDEX pending_logins_connection ON pending_logins (connection_id, principal);
CREATE INDEX pending_logins_started ON pending_logins (started_unix);
