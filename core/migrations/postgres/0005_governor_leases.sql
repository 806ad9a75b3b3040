-- exgate store on PostgreSQL, schema version 5: the per-mailbox governor shared by every gateway
-- on this database (core/src/governor/shared.rs). One row per governor (`scope`: graph, ews,
-- imap) and mailbox holds its ledger as JSON: the leases of the mailbox's window still counted,
-- and the concurrent slots each gateway holds, with their ends in microseconds of this server's
-- clock. A gateway changes a row under its row lock (`INSERT ... ON CONFLICT DO UPDATE ...
-- RETURNING`, then `UPDATE` in the same transaction) and deletes it once nothing is counted.
-- Nothing here is secret: mailbox addresses and counts.

CREATE TABLE governor_ledgers (
    scope      TEXT NOT NULL,
    mailbox    TEXT NOT NULL,
    ledger     TEXT NOT NULL,
    PRIMARY KEY (scope, mailbox)
);
