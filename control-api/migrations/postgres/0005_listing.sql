-- Keyset listing of calls, newest first (sessions already have
-- sessions_tenant_created on (tenant_id, created_at DESC, id DESC)).
CREATE INDEX calls_tenant_started_id ON calls (tenant_id, started_at DESC, id DESC);

-- Idempotency-Key records: one per (tenant, key), kept 24 h.
-- `status`/`response` stay NULL while the first request runs (the lock).
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    key          TEXT NOT NULL,
    scope        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    response     TEXT,
    locked_at    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- `maskline numbers remove`: a removed number leaves the pool but its row
-- stays, because past sessions still reference it.
ALTER TABLE numbers ADD COLUMN removed_at BIGINT;
