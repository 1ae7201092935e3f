-- Several Maskline nodes on one PostgreSQL (issue #9). A cluster needs
-- PostgreSQL; on SQLite the table stays empty and node_id NULL, so the same
-- queries run on both. Keep in step with migrations/postgres/0007_cluster.sql.

CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    http_address     TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    heartbeat_at     INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL,
    left_at          INTEGER,
    reaped_at        INTEGER
);

ALTER TABLE calls ADD COLUMN node_id TEXT;
ALTER TABLE operations ADD COLUMN node_id TEXT;
CREATE INDEX calls_node_live ON calls (node_id) WHERE ended_at IS NULL;
