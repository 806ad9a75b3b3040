-- exgate store, schema version 6: the status of sign-ins applications started through the API,
-- by login ID (see PostgreSQL's 0006), so that its status route answers whichever process took
-- the callback. Rows live an hour; expired ones and, beyond the cap, the oldest are purged as new
-- ones are added.
CREATE TABLE login_status (
    login_id      TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL UNIQUE,
    connection_id TEXT NOT NULL,
    started_unix  INTEGER NOT NULL,
    status        TEXT NOT NULL,
    principal     TEXT,
    mailbox       TEXT,
    error         TEXT,
    hint          TEXT
);
CREATE INDEX login_status_started ON login_status (started_unix);
