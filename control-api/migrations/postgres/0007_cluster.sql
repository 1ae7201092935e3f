-- Several Maskline nodes on one PostgreSQL (issue #9).
-- Keep in step with migrations/sqlite/0007_cluster.sql.

-- One row per node that ever ran with a `[cluster] node_id`. A node renews
-- lease_expires_at every lease/3; once it has passed, a survivor ends the
-- node's live calls (reaped_at) and the node is dead until it registers
-- again. left_at: a clean stop.
CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    http_address     TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    heartbeat_at     BIGINT NOT NULL,
    lease_expires_at BIGINT NOT NULL,
    left_at          BIGINT,
    reaped_at        BIGINT
);

-- The node that owns a call (its SIP dialogs and media live there) and the
-- node that dispatches an operation. Filled by the column default from the
-- connection's `maskline.node_id` setting, which the store sets on every
-- pooled connection of a clustered node (NULL on a single node).
ALTER TABLE calls ADD COLUMN node_id TEXT
    DEFAULT NULLIF(current_setting('maskline.node_id', true), '');
ALTER TABLE operations ADD COLUMN node_id TEXT
    DEFAULT NULLIF(current_setting('maskline.node_id', true), '');
CREATE INDEX calls_node_live ON calls (node_id) WHERE ended_at IS NULL;

-- Route changes reach every node: a new session, a completed one, or a
-- changed expiry NOTIFY `maskline_routes` with the session id (delivered at
-- commit, in commit order).
CREATE FUNCTION maskline_notify_route() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('maskline_routes', NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_route_created AFTER INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION maskline_notify_route();
CREATE TRIGGER sessions_route_changed AFTER UPDATE OF state, expires_at ON sessions
    FOR EACH ROW
    WHEN ((NEW.state = 'completed' AND OLD.state <> 'completed')
          OR NEW.expires_at <> OLD.expires_at)
    EXECUTE FUNCTION maskline_notify_route();

-- New events wake every node's event feed (SSE): NOTIFY `maskline_events`
-- once per inserting statement; the feed reads the rows by id.
CREATE FUNCTION maskline_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('maskline_events', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_inserted AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION maskline_notify_events();
