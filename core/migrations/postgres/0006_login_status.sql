-- exgate store on PostgreSQL, schema version 6: the status of sign-ins applications started
-- through the API, by login ID, so that `GET …/logins/{login_id}` answers on any gateway. A row is
-- written `pending` when the sign-in starts and gets its outcome when the callback (on whichever
-- gateway) finishes it. Rows live an hour; the gateway purges expired ones and, beyond the cap,
-- the oldest (by `seq`) as it adds new ones. Transient: `store migrate` does not copy them.
CREATE TABLE login_status (
    login_id      TEXT PRIMARY KEY,
    seq           BIGSERIAL NOT NULL UNIQUE,
    connection_id TEXT NOT NULL,
    started_unix  BIGINT NOT NULL,
    status        TEXT NOT NULL,
    principal     TEXT,
    mailbox       TEXT,
    error         TEXT,
    hint          TEXT
);
CREATE INDEX login_status_started ON login_status (started_unix);
