-- Maskline control-plane schema (PostgreSQL). Times are BIGINT unix milliseconds.
-- Keep in step with migrations/sqlite/0001_init.sql.

CREATE TABLE tenants (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    default_ttl_minutes  BIGINT NOT NULL,
    max_ttl_minutes      BIGINT NOT NULL,
    max_concurrent_calls BIGINT NOT NULL,
    calls_per_second     BIGINT NOT NULL,
    webhook_url          TEXT,
    created_at           BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- The masked-number pool. session_id is set while a session holds the number.
CREATE TABLE numbers (
    e164        TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    session_id  TEXT,
    released_at BIGINT,
    added_at    BIGINT NOT NULL
);
-- Allocation: free numbers of a tenant, least recently released first.
CREATE INDEX numbers_free ON numbers (tenant_id, session_id, released_at);
CREATE UNIQUE INDEX numbers_session ON numbers (session_id) WHERE session_id IS NOT NULL;

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    masked_number     TEXT NOT NULL REFERENCES numbers (e164),
    party_a           TEXT NOT NULL,
    party_b           TEXT NOT NULL,
    record            BIGINT NOT NULL CHECK (record IN (0, 1)),
    ttl_minutes       BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'active', 'completed')),
    metadata          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    completed_at      BIGINT,
    completion_reason TEXT CHECK (completion_reason IN ('ttl_expired', 'closed')),
    call_count        BIGINT NOT NULL DEFAULT 0,
    active_call_id    TEXT
);
CREATE INDEX sessions_tenant_created ON sessions (tenant_id, created_at DESC, id DESC);
CREATE INDEX sessions_state_expires ON sessions (state, expires_at);

CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    session_id    TEXT NOT NULL REFERENCES sessions (id),
    direction     TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    state         TEXT NOT NULL CHECK (state IN ('queued', 'ringing', 'answered', 'bridged',
                                                 'completed', 'failed', 'cancelled')),
    caller        TEXT NOT NULL,
    callee        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    answered_at   BIGINT,
    ended_at      BIGINT,
    duration_ms   BIGINT,
    hangup_cause  TEXT,
    hangup_by     TEXT CHECK (hangup_by IN ('a', 'b', 'api', 'ttl', 'system')),
    sip_status    BIGINT,
    recording_url TEXT
);
CREATE INDEX calls_session ON calls (session_id, started_at DESC);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at DESC);
CREATE INDEX calls_live ON calls (ended_at) WHERE ended_at IS NULL;

-- Append-only event log; id is the SSE event id.
CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    session_id TEXT,
    call_id    TEXT,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_tenant ON events (tenant_id, id);
CREATE INDEX events_call ON events (call_id, id);
