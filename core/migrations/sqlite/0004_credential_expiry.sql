-- exgate store, schema version 4: connections may carry when their credential (client secret,
-- certificate or password) expires. It lives in `connections.doc` (JSON) as the optional key
-- `credential_expires` (RFC 3339); documents written by earlier versions have none and need no
-- change. The version is raised so that an older exgate, which would drop the key when it
-- rewrites a connection, refuses this store (SchemaTooNew) instead.
SELECT 1;
