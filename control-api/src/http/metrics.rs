//! `GET /metrics`: Prometheus text exposition of the engine's counters and
//! gauges (calls, causes, SIP drops, RTP) and the store's (open sessions
//! and free numbers per tenant, webhook backlog and failures).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::AppState;
use crate::error::ApiError;

/// Prometheus text format 0.0.4.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let m = state.sessions.engine().metrics();
    let mut out = String::with_capacity(4096);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "maskline_sip_messages_total",
        "SIP messages received.",
        m.sip_messages,
    );
    counter(
        "maskline_sip_malformed_total",
        "SIP messages that did not parse.",
        m.sip_malformed,
    );
    counter(
        "maskline_sip_scanner_dropped_total",
        "Requests from scanner user agents, dropped.",
        m.sip_dropped_scanner,
    );
    counter(
        "maskline_sip_rate_limited_total",
        "Requests over a source's budget, dropped.",
        m.sip_dropped_rate_limited,
    );
    counter(
        "maskline_call_attempts_total",
        "INVITEs admitted as calls.",
        m.call_attempts,
    );
    counter(
        "maskline_rtp_relayed_packets_total",
        "RTP packets relayed by ended calls.",
        m.rtp_relayed,
    );
    counter(
        "maskline_rtp_dropped_packets_total",
        "Packets dropped by ended calls' relays.",
        m.rtp_dropped,
    );
    let _ = writeln!(out, "# HELP maskline_calls_rejected_total INVITEs refused before a call existed.\n# TYPE maskline_calls_rejected_total counter");
    for (status, n) in &m.calls_rejected {
        let _ = writeln!(
            out,
            "maskline_calls_rejected_total{{status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP maskline_calls_ended_total Calls ended, by Q.850 cause.\n# TYPE maskline_calls_ended_total counter");
    for (cause, n) in &m.calls_ended {
        let _ = writeln!(out, "maskline_calls_ended_total{{cause=\"{cause}\"}} {n}");
    }
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge("maskline_active_calls", "Calls live now.", m.active_calls);
    gauge(
        "maskline_rtp_free_port_pairs",
        "Free RTP/RTCP port pairs.",
        m.free_port_pairs,
    );
    gauge(
        "maskline_registered_contacts",
        "Registered softphone contacts.",
        m.registered_contacts,
    );

    let pool = state.store.pool();
    let open: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.name, COUNT(s.id) FROM tenants t LEFT JOIN sessions s \
         ON s.tenant_id = t.id AND s.state <> 'completed' GROUP BY t.name ORDER BY t.name",
    )
    .fetch_all(pool)
    .await
    .map_err(crate::store::StoreError::from)?;
    let free: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.name, COUNT(n.e164) FROM tenants t LEFT JOIN numbers n \
         ON n.tenant_id = t.id AND n.session_id IS NULL AND n.removed_at IS NULL GROUP BY t.name ORDER BY t.name",
    )
    .fetch_all(pool)
    .await
    .map_err(crate::store::StoreError::from)?;
    let webhooks: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await
    .map_err(crate::store::StoreError::from)?;
    let _ = writeln!(out, "# HELP maskline_open_sessions Sessions not completed, per tenant.\n# TYPE maskline_open_sessions gauge");
    for (tenant, n) in &open {
        let _ = writeln!(
            out,
            "maskline_open_sessions{{tenant=\"{}\"}} {n}",
            escape(tenant)
        );
    }
    let _ = writeln!(out, "# HELP maskline_free_numbers Pool numbers not held by a session, per tenant.\n# TYPE maskline_free_numbers gauge");
    for (tenant, n) in &free {
        let _ = writeln!(
            out,
            "maskline_free_numbers{{tenant=\"{}\"}} {n}",
            escape(tenant)
        );
    }
    let _ = writeln!(out, "# HELP maskline_webhook_deliveries Webhook deliveries by status (pending = backlog).\n# TYPE maskline_webhook_deliveries gauge");
    for (status, n) in &webhooks {
        let _ = writeln!(
            out,
            "maskline_webhook_deliveries{{status=\"{}\"}} {n}",
            escape(status)
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// Escape a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
