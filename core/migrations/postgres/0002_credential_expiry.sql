-- exgate store on PostgreSQL, schema version 2 (SQLite's version 4): connections may carry
-- `credential_expires` in `connections.doc`. Documents of version 1 need no change; the version
-- is raised so that an older exgate, which would drop the key, refuses this store instead.
SELECT 1;
