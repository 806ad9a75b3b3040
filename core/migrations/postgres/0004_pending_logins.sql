-- exgate store on PostgreSQL, schema version 4: browser sign-ins in flight, so that the callback
-- on any gateway finishes a sign-in another one started. Keyed by the SHA-256 of the sign-in's
-- `state` (hex), never the state itself; everything else the callback needs (the PKCE verifier,
-- the nonce, the scopes, the redirect URI, where to send the browser) is one sealed document bound
-- to its row. Rows live ten minutes; the gateway deletes a row when its callback takes it and
-- purges expired ones as it adds new ones. `seq` orders them for the caps (oldest evicted first).
CREATE TABLE pending_logins (
    state_hash    TEXT PRIMARY KEY,
    seq           BIGSERIAL NOT NULL UNIQUE,
    connection_id TEXT NOT NULL,
    principal     TEXT,
    started_unix  BIGINT NOT NULL,
    payload_sealed BYTEA NOT NULL
);
CREATE INDEX pending_logins_connection ON pending_logins (connection_id, principal);
CREATE INDEX pending_logins_started ON pending_logins (started_unix);
