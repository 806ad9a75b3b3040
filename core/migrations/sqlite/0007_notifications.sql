-- exgate store, schema version 7: change notifications (issue 16; see PostgreSQL's 0007, the
-- same tables). Watches with their sync state and the items they know, the journal of events,
-- webhooks with their delivery position, and dead letters.
--
-- Watches and webhooks may belong to a connection declared in a configuration file, which has no
-- row here; so, like accounts, they carry the connection's ID without a foreign key, and deleting
-- a connection deletes them in the same transaction (their items and dead letters follow by
-- cascade). Journal entries stay until purged.
-- Times are RFC 3339 text in UTC with nine fractional digits: fixed width, so they compare and
-- order as text. Secrets (a watch's state document, which holds Graph's `clientState`, and a
-- webhook's signing secret) live only in the `*_sealed` columns, sealed bound to their row.

CREATE TABLE watches (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    principal     TEXT NOT NULL,
    -- another mailbox than the principal's own, by address
    mailbox       TEXT,
    -- what it follows, as a JSON array
    watched       TEXT NOT NULL,
    -- the API key that created it (NULL: an admin)
    api_key_id    TEXT,
    created_at    TEXT NOT NULL,
    -- the engine's state between syncs (NULL before the first), and its version, which each
    -- sync's commit compares and sets
    state_sealed  BLOB,
    version       INTEGER NOT NULL DEFAULT 0,
    -- the gateway that runs it, until when
    owner         TEXT,
    owner_until   TEXT
);
CREATE INDEX watches_connection ON watches (connection_id);

CREATE TABLE watch_items (
    watch_id TEXT NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
    -- `mail:<folder>` or `calendar`
    scope    TEXT NOT NULL,
    item_id  TEXT NOT NULL,
    version  TEXT NOT NULL,
    extra    TEXT NOT NULL,
    PRIMARY KEY (watch_id, scope, item_id)
);

-- The journal. `seq` is the rowid: the next one is the highest + 1, and the newest entry is
-- never purged, so `seq` never goes back (also in a copy, which carries the rows as they are).
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    event_id      TEXT NOT NULL,
    watch_id      TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    principal     TEXT NOT NULL,
    -- the event's mailbox (else the principal's), in lower case, as filters compare it
    mailbox       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    -- the event as applications receive it, without its seq (JSON)
    body          TEXT NOT NULL,
    -- when the change was detected; purges go by it
    created_at    TEXT NOT NULL,
    UNIQUE (watch_id, event_id)
);
CREATE INDEX events_connection ON events (connection_id, seq);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    api_key_id      TEXT,
    -- its filter: the connection, and optionally a principal, a mailbox, kinds (a JSON array,
    -- empty for every kind)
    connection_id   TEXT NOT NULL,
    principal       TEXT,
    mailbox         TEXT,
    kinds           TEXT NOT NULL,
    url             TEXT NOT NULL,
    secret_sealed   BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    -- delivery: every event up to `cursor` delivered or dead; the next one failed `attempts`
    -- times and is tried again at `next_attempt_at`
    cursor          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT,
    last_error      TEXT,
    -- when the next event first failed (it becomes a dead letter after notify.webhook_retry_hours)
    first_failed_at TEXT,
    owner           TEXT,
    owner_until     TEXT
);
CREATE INDEX webhooks_connection ON webhooks (connection_id);

CREATE TABLE dead_letters (
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    -- the event given up on, without its seq (JSON)
    event      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    failed_at  TEXT NOT NULL,
    -- 1: an admin asked for it to be delivered again
    replay     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, seq)
);
