-- exgate store, schema version 3: the local bridge's users. A client that only knows passwords
-- signs in to `exgate bridge` with `username` (a mailbox address, lower case) and a local
-- password whose argon2id hash is kept here; the bridge then acts for `mailbox` through the
-- connection, as the signed-in account `principal` (delegated) or as the app (NULL).
CREATE TABLE bridge_users (
    username      TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    principal     TEXT,
    mailbox       TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX bridge_users_connection ON bridge_users (connection_id);
