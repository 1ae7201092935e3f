-- Call control, operations and webhooks (PostgreSQL).
-- Keep in step with migrations/sqlite/0003_call_control.sql.

-- How a session's inbound calls are handled: bridged at once, or held
-- ringing for the control API (answer / hangup / disconnect).
ALTER TABLE sessions ADD COLUMN inbound TEXT NOT NULL DEFAULT 'bridge'
    CHECK (inbound IN ('bridge', 'control'));

-- One row per accepted call-control command. (call_id, command_uid) is
-- unique so that a replayed command_uid finds the first operation; rows
-- without a uid never collide (NULLs are distinct).
CREATE TABLE operations (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    call_id       TEXT NOT NULL REFERENCES calls (id),
    command       TEXT NOT NULL CHECK (command IN ('answer', 'hangup', 'disconnect')),
    command_uid   TEXT,
    cause         TEXT,
    status        TEXT NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed', 'timeout')),
    error         TEXT,
    error_message TEXT,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    UNIQUE (call_id, command_uid)
);
CREATE INDEX operations_pending ON operations (status) WHERE status = 'in_progress';

-- A tenant's webhook endpoint (one per tenant). `secret` is `whsec_` +
-- base64 of 32 random bytes (Standard Webhooks). `source`: set through the
-- API or from `[[tenants]] webhook_url`.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL UNIQUE REFERENCES tenants (id),
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('api', 'config')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    disabled_reason TEXT
);

-- The webhook outbox: one row per (event, endpoint), written in the same
-- transaction as the event row. The worker picks `pending` rows whose
-- next_attempt_at has come.
CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    event_id         BIGINT NOT NULL REFERENCES events (id),
    endpoint_id      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'disabled')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, status);

-- Every delivery attempt and its outcome (GET /v1/webhook/deliveries).
CREATE TABLE webhook_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id),
    event_id    BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    url         TEXT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed', 'disabled')),
    duration_ms BIGINT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_tenant ON webhook_attempts (tenant_id, id);
