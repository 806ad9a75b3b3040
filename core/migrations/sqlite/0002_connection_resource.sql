-- exgate store, schema version 2: connections may carry an RFC 8707 resource indicator.
-- It lives in `connections.doc` (JSON) as the optional key `resource`; documents written by
-- version 1 have none and need no change. The version is raised so that an older exgate, which
-- would drop the key when it rewrites a connection, refuses this store (SchemaTooNew) instead.
SELECT 1;
