-- exgate store on PostgreSQL, schema version 3: what several gateways on one database share
-- beyond the rows themselves.
--
-- 1. Change notifications. Every write that changes what a gateway caches (connections, static
--    users, API keys, accounts) sends `NOTIFY exgate_changes` with the kind of row (and, for an
--    account, `accounts:<id>`), delivered when the writing transaction commits. Each gateway
--    LISTENs and drops the matching cache. Triggers, not application code, send them, so no
--    write path can forget to. Writes that change nothing a cache holds do not notify: an API
--    key's or an account's `last_used_at`, an account's rotated refresh token (the refresh
--    token is never cached).
-- 2. `auth_failures`: the gateways' failed authentications per client address and kind of
--    credential, within a window (`since_ms`, milliseconds since the Unix epoch, on the gateway's
--    clock), so that an attacker spreading guesses over several gateways is counted once.
--    Rows are transient: `exgate-server store migrate` does not copy them.

CREATE FUNCTION exgate_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' AND TG_TABLE_NAME = 'accounts' THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('exgate_changes', 'accounts:' || OLD.id);
        ELSE
            PERFORM pg_notify('exgate_changes', 'accounts:' || NEW.id);
        END IF;
    ELSE
        PERFORM pg_notify('exgate_changes', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER connections_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON connections
    FOR EACH STATEMENT EXECUTE FUNCTION exgate_notify_change('connections');

CREATE TRIGGER static_users_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON static_users
    FOR EACH STATEMENT EXECUTE FUNCTION exgate_notify_change('static_users');

CREATE TRIGGER api_keys_added_or_removed
    AFTER INSERT OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION exgate_notify_change('api_keys');

-- A revocation (or any change but the last use).
CREATE TRIGGER api_keys_changed
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.scope IS DISTINCT FROM NEW.scope
          OR OLD.name IS DISTINCT FROM NEW.name
          OR OLD.key_hash IS DISTINCT FROM NEW.key_hash)
    EXECUTE FUNCTION exgate_notify_change('api_keys');

CREATE TRIGGER accounts_added_or_removed
    AFTER INSERT OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION exgate_notify_change('accounts');

CREATE TRIGGER accounts_truncated
    AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION exgate_notify_change('accounts');

-- A status, mailbox or kind of credential changed, or the refresh token was dropped (a reset).
CREATE TRIGGER accounts_changed
    AFTER UPDATE ON accounts
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.status_reason IS DISTINCT FROM NEW.status_reason
          OR OLD.mailbox IS DISTINCT FROM NEW.mailbox
          OR OLD.credential_kind IS DISTINCT FROM NEW.credential_kind
          OR (OLD.refresh_token_sealed IS NULL) <> (NEW.refresh_token_sealed IS NULL))
    EXECUTE FUNCTION exgate_notify_change('accounts');

CREATE TABLE auth_failures (
    key      TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    since_ms BIGINT NOT NULL
);
CREATE INDEX auth_failures_since ON auth_failures (since_ms);
