//! `GET /openapi.json` (OpenAPI 3.1) and `GET /docs` (a self-contained
//! HTML page that renders it; no external assets).
//!
//! The document is built here from the route table of [`crate::app`]; a
//! unit test reads `app.rs` and fails when a route or method is missing, so
//! the spec cannot silently fall behind the router. (`utoipa` was not used:
//! it would need derive attributes on every handler and view, in files
//! other work is editing, and adds a heavy proc-macro build.)

use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use maskline_engine::sip::q850;

use crate::http::listing::{CALL_STATES, DEFAULT_LIMIT, MAX_LIMIT, SESSION_STATES};
use crate::service::events::EVENT_TYPES;

/// Every `error` code a response can carry: the codes of
/// [`crate::error::ApiError`] and the recording download's
/// `range_not_satisfiable`. The `Error` schema's enum; unit tests keep it
/// equal to the enum's codes and to the README's table.
pub const ERROR_CODES: [&str; 20] = [
    "unauthenticated",
    "not_found",
    "method_not_allowed",
    "idempotency_key_invalid",
    "idempotency_conflict",
    "idempotency_in_progress",
    "idempotency_state_unknown",
    "number_pool_exhausted",
    "concurrent_call_not_allowed",
    "session_busy",
    "session_completed",
    "call_ended",
    "not_recording",
    "command_uid_conflict",
    "range_not_satisfiable",
    "too_many_sse_streams",
    "rate_limited",
    "payload_too_large",
    "validation_failed",
    "internal",
];

/// `GET /openapi.json`.
pub async fn spec() -> Json<Value> {
    Json(document())
}

/// `GET /docs`: renders `/openapi.json` in the browser.
pub async fn docs() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DOCS_HTML,
    )
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(schema: Value) -> Value {
    json!({ "content": { "application/json": { "schema": schema } } })
}

fn ok(desc: &str, schema: Value) -> Value {
    let mut v = json_body(schema);
    if let Some(o) = v.as_object_mut() {
        o.insert("description".into(), json!(desc));
    }
    v
}

fn err(desc: &str) -> Value {
    ok(desc, schema_ref("Error"))
}

fn path_id(what: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true,
            "description": format!("The {what} id."), "schema": { "type": "string" } })
}

fn query(name: &str, desc: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": schema })
}

fn idempotency_header() -> Value {
    json!({ "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Retry-safe key (1–255 printable ASCII characters), per tenant, kept 24 h. \
                            Same key + same body → the stored response with `replayed: true`.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 } })
}

fn responses(pairs: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (code, v) in pairs {
        m.insert((*code).to_string(), v.clone());
    }
    m.insert(
        "401".into(),
        err("unauthenticated: missing or unknown X-API-Key"),
    );
    m.insert(
        "429".into(),
        err("rate_limited: over the API key's request rate (see Retry-After)"),
    );
    Value::Object(m)
}

fn op(summary: &str, tag: &str, params: Vec<Value>, resp: Value) -> Value {
    json!({ "summary": summary, "tags": [tag], "parameters": params,
            "security": [{ "ApiKey": [] }], "responses": resp })
}

fn with_body(mut op: Value, schema: Value) -> Value {
    if let Some(o) = op.as_object_mut() {
        let mut b = json_body(schema);
        if let Some(bo) = b.as_object_mut() {
            bo.insert("required".into(), json!(true));
        }
        o.insert("requestBody".into(), b);
    }
    op
}

fn listing_params(states: &[&str], with_session: bool) -> Vec<Value> {
    let mut p = vec![
        query(
            "limit",
            "Page size.",
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT }),
        ),
        query(
            "cursor",
            "`next_cursor` of the previous page (opaque).",
            json!({ "type": "string" }),
        ),
        query(
            "since",
            "Only objects created since: a duration (`15m`, `1h`, `24h`, `7d`, `30d`) or an RFC 3339 UTC time. Default `24h`.",
            json!({ "type": "string", "default": "24h", "anyOf": [
                { "pattern": "^[0-9]{1,9}[smhd]$" }, { "format": "date-time" } ] }),
        ),
        query("state", "Only objects in this state.", json!({ "type": "string", "enum": states })),
    ];
    if with_session {
        p.push(query(
            "session_id",
            "Only calls of this session.",
            json!({ "type": "string", "minLength": 1, "maxLength": 64 }),
        ));
    }
    p
}

/// Every cause name `hangup` accepts: the canonical name of each Q.850
/// code the engine knows, and its aliases.
fn cause_names() -> Vec<&'static str> {
    (1..=127)
        .chain([487])
        .filter_map(q850::by_code)
        .map(|c| c.name)
        .chain(q850::by_name("MEDIA_TIMEOUT").map(|c| c.name))
        .collect()
}

fn command_op(name: &str, what: &str) -> Value {
    let mut props = json!({
        "command_uid": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[a-zA-Z0-9._-]+$",
                         "description": "Retry-safe id: the same uid again returns the same operation." }
    });
    if name == "hangup" {
        props["cause"] = json!({ "type": "string", "enum": cause_names(),
            "description": "Q.850 cause name (default NORMAL_CLEARING)." });
    }
    let mut operation = with_body(
        op(
            what,
            "Call control",
            vec![path_id("call")],
            responses(&[
                ("202", ok("command accepted", schema_ref("CommandAccepted"))),
                ("404", err("not_found")),
                ("409", err("call_ended or command_uid_conflict")),
                ("413", err("payload_too_large")),
                (
                    "422",
                    ok("validation_failed", schema_ref("ValidationError")),
                ),
            ]),
        ),
        json!({ "type": "object", "additionalProperties": false, "properties": props }),
    );
    // Every field is optional: an empty body is `{}`.
    operation["requestBody"]["required"] = json!(false);
    operation
}

fn paths() -> Value {
    let party = json!({ "type": "string", "pattern": "^\\+?[0-9]{6,15}$", "examples": ["+14155550101"],
        "description": "E.164 number (`tel:`/`sip:` forms and the separators `-. ()` are accepted too); \
                        party_b must differ from party_a" });
    let session_create = json!({ "type": "object", "additionalProperties": false,
        "required": ["party_a", "party_b"], "properties": {
            "party_a": party.clone(),
            "party_b": party,
            "ttl_minutes": { "type": ["integer", "null"], "minimum": 1 },
            "record": { "type": ["boolean", "null"] },
            "metadata": { "type": ["object", "null"] },
            "inbound": { "type": ["string", "null"], "enum": ["bridge", "control", null] }
        } });
    let recording = json!({ "type": "object", "required": ["recording"],
        "properties": { "recording": { "type": "string", "enum": ["paused", "recording"] } } });
    let sse = json!({ "description": "text/event-stream: one message per event (`id:`, `event:`, `data:` \
                       with the Event envelope as JSON); a final `event: error` when the stream is cut off",
        "content": { "text/event-stream": { "schema": schema_ref("SseMessage") } } });
    let event_id = json!({ "type": "string", "pattern": "^[0-9]{1,18}$" });
    let one_type = format!("({})", EVENT_TYPES.join("|").replace('.', "\\."));
    let sse_params = |call: bool| {
        let mut p = vec![
            json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": event_id.clone(),
                    "description": "Replay the events after this event id (the header wins over the query)." }),
            query(
                "last_event_id",
                "Same as the Last-Event-ID header.",
                event_id.clone(),
            ),
        ];
        if call {
            p.insert(0, path_id("call"));
        } else {
            p.push(query(
                "type",
                "Comma-separated event types to receive.",
                json!({ "type": "string", "pattern": format!("^{one_type}(,{one_type})*$") }),
            ));
        }
        p
    };
    json!({
        "/healthz": { "get": { "summary": "Liveness and bound addresses", "tags": ["Operations"],
            "responses": { "200": ok("healthy", json!({ "type": "object",
                "required": ["status", "sip", "http"], "properties": {
                    "status": { "type": "string" }, "sip": { "type": "string" }, "http": { "type": "string" } } })) } } },
        "/readyz": { "get": { "summary": "Readiness: the store answers and SIP takes calls (not draining)", "tags": ["Operations"],
            "responses": {
                "200": ok("ready", json!({ "type": "object", "required": ["status"],
                    "properties": { "status": { "const": "ready" } } })),
                "503": { "description": "not ready", "content": { "application/json": { "schema": {
                    "type": "object", "required": ["status", "reason", "message"], "properties": {
                        "status": { "const": "not_ready" },
                        "reason": { "enum": ["store_timeout", "store_unavailable", "sip_stopped", "draining"] },
                        "message": { "type": "string" } } } } } } } } },
        "/metrics": { "get": { "summary": "Prometheus metrics (text exposition format)", "tags": ["Operations"],
            "responses": { "200": { "description": "metrics",
                "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
        "/openapi.json": { "get": { "summary": "This document", "tags": ["Operations"],
            "responses": { "200": ok("OpenAPI 3.1 document", json!({ "type": "object" })) } } },
        "/docs": { "get": { "summary": "HTML rendering of this document", "tags": ["Operations"],
            "responses": { "200": { "description": "HTML page",
                "content": { "text/html": { "schema": { "type": "string" } } } } } } },
        "/v1/sessions": {
            "post": with_body(op("Create a masked session", "Sessions", vec![idempotency_header()],
                responses(&[
                    ("201", ok("created (or replayed)", schema_ref("Session"))),
                    ("400", err("idempotency_key_invalid")),
                    ("409", err("number_pool_exhausted, idempotency_conflict, idempotency_in_progress, idempotency_state_unknown")),
                    ("413", err("payload_too_large")),
                    ("422", ok("validation_failed", schema_ref("ValidationError"))),
                ])), session_create),
            "get": op("List sessions, newest first", "Sessions", listing_params(&SESSION_STATES, false),
                responses(&[
                    ("200", ok("a page", json!({ "type": "object", "required": ["data", "next_cursor"],
                        "properties": { "data": { "type": "array", "items": schema_ref("Session") },
                                        "next_cursor": { "type": ["string", "null"] } } }))),
                    ("422", ok("validation_failed", schema_ref("ValidationError"))),
                ])),
        },
        "/v1/sessions/{id}": { "get": op("Get a session with its calls", "Sessions", vec![path_id("session")],
            responses(&[("200", ok("the session", schema_ref("Session"))), ("404", err("not_found"))])) },
        "/v1/sessions/{id}/complete": { "post": op("Complete a session (idempotent)", "Sessions", vec![path_id("session")],
            responses(&[("200", ok("the session", schema_ref("Session"))), ("404", err("not_found"))])) },
        "/v1/calls": { "get": op("List calls, newest first", "Calls", listing_params(&CALL_STATES, true),
            responses(&[
                ("200", ok("a page", json!({ "type": "object", "required": ["data", "next_cursor"],
                    "properties": { "data": { "type": "array", "items": schema_ref("Call") },
                                    "next_cursor": { "type": ["string", "null"] } } }))),
                ("422", ok("validation_failed", schema_ref("ValidationError"))),
            ])) },
        "/v1/calls/originate": { "post": with_body(op("Originate a call: ring from_party first (masked caller ID), then the other party, and bridge",
                "Calls", vec![idempotency_header()],
                responses(&[
                    ("201", ok("dialling (or replayed)", schema_ref("Call"))),
                    ("202", ok("queued by the tenant's calls_per_second (state `queued`, `position`)", schema_ref("Call"))),
                    ("400", err("idempotency_key_invalid")),
                    ("404", err("not_found (no such session)")),
                    ("409", err("concurrent_call_not_allowed (with active_call_ids, max_concurrent), session_busy, \
                                 session_completed, idempotency_conflict, idempotency_in_progress, idempotency_state_unknown")),
                    ("413", err("payload_too_large")),
                    ("422", ok("validation_failed", schema_ref("ValidationError"))),
                ])),
            json!({ "type": "object", "additionalProperties": false, "required": ["session_id", "from_party"],
                    "properties": { "session_id": { "type": "string", "minLength": 1, "maxLength": 64 },
                                    "from_party": { "type": "string", "enum": ["a", "b"] } } })) },
        "/v1/calls/{id}/cancel": { "post": op("Cancel a queued or still-ringing call (idempotent)", "Calls", vec![path_id("call")],
            responses(&[("200", ok("whether the call is cancelled", json!({ "type": "object", "required": ["cancelled"],
                "properties": { "cancelled": { "type": "boolean" } } }))), ("404", err("not_found"))])) },
        "/v1/calls/{id}": { "get": op("Get a call", "Calls", vec![path_id("call")],
            responses(&[("200", ok("the call", schema_ref("Call"))), ("404", err("not_found"))])) },
        "/v1/calls/{id}/commands/answer": { "post": command_op("answer", "Answer a call held in control mode") },
        "/v1/calls/{id}/commands/hangup": { "post": command_op("hangup", "Hang up a call with a cause") },
        "/v1/calls/{id}/commands/disconnect": { "post": command_op("disconnect", "Disconnect a call") },
        "/v1/calls/{id}/events": { "get": op("Server-sent events of one call", "Events", sse_params(true),
            responses(&[("200", sse.clone()), ("404", err("not_found")),
                        ("422", ok("validation_failed", schema_ref("ValidationError"))),
                        ("503", err("too_many_sse_streams"))])) },
        "/v1/calls/{id}/recording": { "get": op("Download the recording (stereo WAV, left = caller)", "Recordings",
            vec![path_id("call"), query("api_key", "API key, instead of X-API-Key.", json!({ "type": "string" })),
                 json!({ "name": "Range", "in": "header", "required": false, "schema": { "type": "string" } })],
            responses(&[
                ("200", { json!({ "description": "WAV file", "content": { "audio/wav": { "schema": { "type": "string", "format": "binary" } } } }) }),
                ("206", { json!({ "description": "part of the WAV file", "content": { "audio/wav": { "schema": { "type": "string", "format": "binary" } } } }) }),
                ("404", err("not_found (also until the recording is ready)")),
                ("416", err("range_not_satisfiable (Content-Range: bytes */<length>)")),
            ])) },
        "/v1/calls/{id}/recording/pause": { "post": op("Pause recording (silence)", "Recordings", vec![path_id("call")],
            responses(&[("200", ok("paused", recording.clone())), ("404", err("not_found")),
                        ("409", err("not_recording or call_ended"))])) },
        "/v1/calls/{id}/recording/resume": { "post": op("Resume recording", "Recordings", vec![path_id("call")],
            responses(&[("200", ok("recording", recording)), ("404", err("not_found")),
                        ("409", err("not_recording or call_ended"))])) },
        "/v1/operations/{id}": { "get": op("Get a command's operation", "Call control", vec![path_id("operation")],
            responses(&[("200", ok("the operation", schema_ref("Operation"))), ("404", err("not_found"))])) },
        "/v1/events": { "get": op("Server-sent events of the tenant", "Events", sse_params(false),
            responses(&[("200", sse), ("422", ok("validation_failed", schema_ref("ValidationError"))),
                        ("503", err("too_many_sse_streams"))])) },
        "/v1/webhook": {
            "put": with_body(op("Set the webhook endpoint (returns the secret once)", "Webhooks", vec![],
                responses(&[("200", ok("endpoint", json!({ "type": "object", "required": ["url", "secret"],
                    "properties": { "url": { "type": "string" }, "secret": { "type": "string", "pattern": "^whsec_" } } }))),
                    ("413", err("payload_too_large")),
                    ("422", ok("validation_failed", schema_ref("ValidationError")))])),
                json!({ "type": "object", "additionalProperties": false, "required": ["url"],
                        "properties": { "url": { "type": "string", "format": "uri" } } })),
            "get": op("Get the webhook endpoint (without its secret)", "Webhooks", vec![],
                responses(&[("200", ok("endpoint", schema_ref("WebhookEndpoint"))), ("404", err("not_found"))])),
            "delete": op("Delete the webhook endpoint (idempotent)", "Webhooks", vec![],
                responses(&[("200", ok("deleted", json!({ "type": "object", "required": ["deleted"],
                    "properties": { "deleted": { "type": "boolean" } } })))])),
        },
        "/v1/webhook/deliveries": { "get": op("Recent delivery attempts, newest first", "Webhooks",
            vec![query("limit", "How many.", json!({ "type": "integer", "minimum": 1,
                "maximum": crate::http::webhooks::MAX_LIMIT, "default": crate::http::webhooks::DEFAULT_LIMIT }))],
            responses(&[("200", ok("attempts", json!({ "type": "object", "required": ["data"],
                "properties": { "data": { "type": "array", "items": schema_ref("DeliveryAttempt") } } }))),
                ("422", ok("validation_failed", schema_ref("ValidationError")))])) },
    })
}

fn schemas() -> Value {
    let s = json!({ "type": "string" });
    let ns = json!({ "type": ["string", "null"] });
    let ni = json!({ "type": ["integer", "null"] });
    let sse_events: Vec<&str> = EVENT_TYPES.iter().copied().chain(["error"]).collect();
    json!({
        "Error": { "type": "object", "required": ["error", "message"], "properties": {
            "error": { "type": "string", "enum": ERROR_CODES, "description": "Stable error code" }, "message": s,
            "retry_after_seconds": { "type": "integer" },
            "active_call_ids": { "type": "array", "items": { "type": "string" } },
            "max_concurrent": { "type": "integer" } } },
        "ValidationError": { "type": "object", "required": ["error", "message", "fields"], "properties": {
            "error": { "type": "string", "const": "validation_failed" }, "message": s,
            "fields": { "type": "object", "additionalProperties": { "type": "string" } } } },
        "Session": { "type": "object", "required": ["id", "state", "masked_number", "party_a", "party_b",
            "record", "ttl_minutes", "created_at", "expires_at", "completed_at", "completion_reason",
            "call_count", "active_call_id", "metadata", "inbound"], "properties": {
            "id": s, "state": { "type": "string", "enum": SESSION_STATES }, "masked_number": s,
            "party_a": s, "party_b": s, "record": { "type": "boolean" }, "ttl_minutes": { "type": "integer" },
            "created_at": s, "expires_at": s, "completed_at": ns,
            "completion_reason": { "type": ["string", "null"], "enum": ["ttl_expired", "closed", null] },
            "call_count": { "type": "integer" }, "active_call_id": ns, "metadata": { "type": "object" },
            "inbound": { "type": "string", "enum": ["bridge", "control"] },
            "calls": { "type": "array", "items": schema_ref("Call") },
            "replayed": { "type": "boolean", "description": "Present when an Idempotency-Key was sent." } } },
        "Call": { "type": "object", "required": ["id", "session_id", "direction", "state", "caller", "callee",
            "started_at", "answered_at", "ended_at", "duration_ms", "hangup_cause", "hangup_by", "sip_status",
            "recording_url"], "properties": {
            "id": s, "session_id": s, "direction": { "type": "string", "enum": ["inbound", "outbound"] },
            "state": { "type": "string", "enum": CALL_STATES }, "caller": s, "callee": s,
            "started_at": s, "answered_at": ns, "ended_at": ns, "duration_ms": ni, "hangup_cause": ns,
            "hangup_by": ns, "sip_status": ni, "recording_url": ns,
            "quality": { "type": ["object", "null"] }, "replayed": { "type": "boolean" },
            "position": { "type": "integer", "description": "Place in the originate queue (queued calls)." } } },
        "Event": { "type": "object", "required": ["id", "type", "created_at", "data"], "properties": {
            "id": { "type": "string", "pattern": "^[0-9]+$", "description": "Also the SSE `id:`." },
            "type": { "type": "string", "enum": EVENT_TYPES }, "created_at": s,
            "data": { "description": "The event's payload (an object; null only if unreadable)." } } },
        "SseMessage": { "type": "object", "required": ["event", "data"],
            "description": "One SSE message as a client parses it (OpenAPI 3.1: the schema of each message).",
            "properties": {
                "id": { "type": "string", "pattern": "^[0-9]+$" },
                "event": { "type": "string", "enum": sse_events },
                "data": { "type": "string", "contentMediaType": "application/json",
                          "contentSchema": { "anyOf": [schema_ref("Event"),
                              { "type": "object", "required": ["reason", "message"], "properties": {
                                  "reason": s, "message": s } }] } } } },
        "CommandAccepted": { "type": "object", "required": ["operation_id", "status", "timeout_ms"], "properties": {
            "operation_id": s, "status": { "type": "string" }, "timeout_ms": { "type": "integer" } } },
        "Operation": { "type": "object", "required": ["id", "call_id", "command", "status", "created_at"], "properties": {
            "id": s, "call_id": s, "command": s, "command_uid": ns, "cause": ns, "status": s,
            "error": { "type": ["object", "null"], "properties": { "code": s, "message": s } },
            "created_at": s, "completed_at": ns } },
        "WebhookEndpoint": { "type": "object", "required": ["url"], "properties": {
            "url": s, "secret_set": { "type": "boolean" }, "source": s, "enabled": { "type": "boolean" },
            "disabled_at": ns, "disabled_reason": ns, "created_at": s, "updated_at": s } },
        "DeliveryAttempt": { "type": "object", "properties": {
            "event_id": s, "event_type": s, "webhook_id": s, "attempt": { "type": "integer" }, "url": s,
            "status_code": ni, "error": ns, "outcome": s, "duration_ms": ni, "at": s,
            "delivery_status": s, "next_attempt_at": ns } },
    })
}

/// The whole OpenAPI 3.1 document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Maskline API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Phone-number masking: sessions, calls, call control, events, webhooks. \
                                  Errors are `{\"error\": code, \"message\": …}`." },
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "ApiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" } }
        }
    })
}

/// The `/docs` page: fetches `/openapi.json` and lists every path, method,
/// parameter, body and response, with the schemas below. Inline CSS and
/// JS only.
pub const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Maskline API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:980px;margin:auto;padding:24px}
h1{margin:0 0 4px}.op{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:10px 0}
.op summary{cursor:pointer;padding:8px 12px;font-family:ui-monospace,monospace}
.m{display:inline-block;width:64px;font-weight:700;text-transform:uppercase}
.get{color:#1769aa}.post{color:#2e7d32}.put{color:#ad6800}.delete{color:#c62828}
.body{padding:0 12px 12px}table{border-collapse:collapse;width:100%}
td,th{border-top:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
pre{background:#f0f2f5;padding:8px;overflow:auto;font-size:13px}
</style></head><body><main>
<h1 id="title">Maskline API</h1><p id="desc"></p><p>Raw document: <a href="/openapi.json">/openapi.json</a></p>
<div id="ops"></div><h2>Schemas</h2><div id="schemas"></div>
</main><script>
"use strict";
function el(tag, attrs, kids){const e=document.createElement(tag);
  for(const [k,v] of Object.entries(attrs||{})) e.setAttribute(k,v);
  for(const c of [].concat(kids||[])) e.append(typeof c==="string"?document.createTextNode(c):c);
  return e;}
function pre(v){return el("pre",{},JSON.stringify(v,null,2));}
fetch("/openapi.json").then(r=>r.json()).then(spec=>{
  document.getElementById("title").textContent=spec.info.title+" "+spec.info.version;
  document.getElementById("desc").textContent=spec.info.description||"";
  const ops=document.getElementById("ops");
  for(const [path,item] of Object.entries(spec.paths)){
    for(const [method,op] of Object.entries(item)){
      const body=el("div",{class:"body"});
      const params=op.parameters||[];
      if(params.length){body.append(el("h4",{},"Parameters"));
        const t=el("table",{},el("tr",{},[el("th",{},"name"),el("th",{},"in"),el("th",{},"schema"),el("th",{},"description")]));
        for(const p of params) t.append(el("tr",{},[el("td",{},p.name+(p.required?" *":"")),el("td",{},p.in),
          el("td",{},JSON.stringify(p.schema)),el("td",{},p.description||"")]));
        body.append(t);}
      if(op.requestBody){body.append(el("h4",{},"Request body"));
        body.append(pre(op.requestBody.content["application/json"].schema));}
      body.append(el("h4",{},"Responses"));
      const t=el("table",{});
      for(const [code,r] of Object.entries(op.responses||{})){
        const c=r.content?Object.entries(r.content).map(([type,m])=>type+" "+JSON.stringify(m.schema)).join("; "):"";
        t.append(el("tr",{},[el("td",{},code),el("td",{},r.description||""),el("td",{},c)]));}
      body.append(t);
      ops.append(el("details",{class:"op"},[el("summary",{},[el("span",{class:"m "+method},method)," "+path+" — "+(op.summary||"")]),body]));
    }
  }
  const sc=document.getElementById("schemas");
  for(const [name,s] of Object.entries((spec.components||{}).schemas||{})){
    sc.append(el("details",{class:"op",id:"schema-"+name},[el("summary",{},name),el("div",{class:"body"},pre(s))]));
  }
}).catch(e=>{document.getElementById("ops").textContent="Cannot load /openapi.json: "+e;});
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    /// `(path, methods)` of every `.route(…)` in `app.rs`.
    fn routes_in_app() -> Vec<(String, Vec<String>)> {
        let src = include_str!("../app.rs");
        let mut out = Vec::new();
        for chunk in src.split(".route(").skip(1) {
            let chunk = chunk.split(".fallback").next().unwrap_or(chunk);
            let Some(start) = chunk.find('"') else {
                continue;
            };
            let rest = &chunk[start + 1..];
            let Some(end) = rest.find('"') else { continue };
            let path = rest[..end].to_string();
            let mut methods = Vec::new();
            for m in ["get", "post", "put", "delete", "patch"] {
                let pat = format!("{m}(");
                let mut from = 0;
                while let Some(i) = rest[from..].find(&pat) {
                    let at = from + i;
                    let before = rest[..at].chars().last();
                    if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == ':') {
                        methods.push(m.to_string());
                    }
                    from = at + pat.len();
                }
            }
            out.push((path, methods));
        }
        out
    }

    #[test]
    fn every_route_and_method_is_documented() {
        let doc = document();
        let routes = routes_in_app();
        assert!(routes.len() >= 20, "parsed only {routes:?}");
        for (path, methods) in routes {
            assert!(!methods.is_empty(), "no method parsed for {path}");
            for m in methods {
                assert!(
                    doc["paths"][&path][&m].is_object(),
                    "{} {path} missing from /openapi.json",
                    m.to_uppercase()
                );
            }
        }
    }

    #[test]
    fn every_documented_route_is_served() {
        let doc = document();
        let routes = routes_in_app();
        let Some(paths) = doc["paths"].as_object() else {
            panic!("no paths in the spec")
        };
        for (path, item) in paths {
            let served = routes.iter().find(|(p, _)| p == path);
            let Some((_, methods)) = served else {
                panic!("{path} is documented but not routed in app.rs")
            };
            for m in item
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if ["get", "post", "put", "delete", "patch", "head"].contains(&m.as_str()) {
                    assert!(
                        methods.contains(&m),
                        "{} {path} is documented but not routed",
                        m.to_uppercase()
                    );
                }
            }
        }
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "dangling $ref {name}"
            );
        }
    }

    /// One value of every [`ApiError`] variant.
    fn every_api_error() -> Vec<ApiError> {
        let all = vec![
            ApiError::Unauthenticated("x"),
            ApiError::NotFound("x"),
            ApiError::MethodNotAllowed,
            ApiError::NumberPoolExhausted,
            ApiError::ConcurrentCallNotAllowed {
                active_call_ids: Vec::new(),
                max_concurrent: 1,
            },
            ApiError::SessionBusy("cal_x".into()),
            ApiError::SessionCompleted,
            ApiError::CallEnded,
            ApiError::NotRecording,
            ApiError::CommandUidConflict("answer".into()),
            ApiError::IdempotencyKeyInvalid("x".into()),
            ApiError::IdempotencyConflict,
            ApiError::IdempotencyInProgress {
                retry_after_secs: 1,
            },
            ApiError::IdempotencyStateUnknown,
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::TooManySseStreams {
                max: 1,
                retry_after_secs: 1,
            },
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::Validation(Default::default()),
            ApiError::Internal("x".into()),
        ];
        for e in &all {
            // Exhaustive on purpose: a new variant does not compile here
            // until it is listed above too.
            match e {
                ApiError::Unauthenticated(_)
                | ApiError::NotFound(_)
                | ApiError::MethodNotAllowed
                | ApiError::NumberPoolExhausted
                | ApiError::ConcurrentCallNotAllowed { .. }
                | ApiError::SessionBusy(_)
                | ApiError::SessionCompleted
                | ApiError::CallEnded
                | ApiError::NotRecording
                | ApiError::CommandUidConflict(_)
                | ApiError::IdempotencyKeyInvalid(_)
                | ApiError::IdempotencyConflict
                | ApiError::IdempotencyInProgress { .. }
                | ApiError::IdempotencyStateUnknown
                | ApiError::RateLimited { .. }
                | ApiError::TooManySseStreams { .. }
                | ApiError::PayloadTooLarge { .. }
                | ApiError::Validation(_)
                | ApiError::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_error_code_is_in_the_error_schema_enum() {
        let doc = document();
        let listed: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let codes: Vec<&str> = every_api_error().iter().map(ApiError::code).collect();
        for code in &codes {
            assert!(
                listed.contains(code),
                "`{code}` missing from the Error schema's enum"
            );
        }
        for code in &listed {
            assert!(
                codes.contains(code) || *code == "range_not_satisfiable",
                "`{code}` is in the Error schema's enum but no ApiError renders it"
            );
        }
        assert_eq!(
            doc["components"]["schemas"]["ValidationError"]["properties"]["error"]["const"],
            ApiError::Validation(Default::default()).code()
        );
    }

    #[test]
    fn every_error_code_is_in_the_readme_table() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## Error codes")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .unwrap_or_default();
        for code in ERROR_CODES {
            let status = every_api_error()
                .iter()
                .find(|e| e.code() == code)
                .map_or(416, |e| e.status().as_u16());
            assert!(
                table.contains(&format!("| {status} | `{code}` |")),
                "README's error-code table has no `| {status} | `{code}` |` row"
            );
        }
    }

    #[test]
    fn every_documented_cause_is_accepted() {
        let names = cause_names();
        for must in [
            "NORMAL_CLEARING",
            "USER_BUSY",
            "CALL_REJECTED",
            "ORIGINATOR_CANCEL",
            "MEDIA_TIMEOUT",
        ] {
            assert!(names.contains(&must), "{must} missing from {names:?}");
        }
        for name in names {
            assert!(
                crate::service::commands::is_known_cause(name)
                    && name.len() <= crate::http::commands::CAUSE_MAX,
                "{name} is documented but refused"
            );
        }
    }

    #[test]
    fn docs_page_is_self_contained() {
        assert!(DOCS_HTML.contains("/openapi.json"));
        for external in ["http://", "https://", "<link", "src="] {
            assert!(!DOCS_HTML.contains(external), "{external}");
        }
    }
}
