//! The JSON shapes of the API (`Session`, `Call`, `Operation`), built from
//! store rows. Used by the HTTP responses and as the `data` of event rows.

use serde::Serialize;

use crate::store::calls::CallRow;
use crate::store::operations::OperationRow;
use crate::store::sessions::SessionRow;
use crate::util::time::format_rfc3339;

/// The `Session` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// `ses_…`
    pub id: String,
    /// `open|active|completed`
    pub state: String,
    /// The masked number.
    pub masked_number: String,
    /// Party A's number.
    pub party_a: String,
    /// Party B's number.
    pub party_b: String,
    /// Whether calls are recorded.
    pub record: bool,
    /// TTL in minutes.
    pub ttl_minutes: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// RFC 3339 UTC, once completed.
    pub completed_at: Option<String>,
    /// `ttl_expired|closed`, once completed.
    pub completion_reason: Option<String>,
    /// Calls seen.
    pub call_count: i64,
    /// The live call, if any.
    pub active_call_id: Option<String>,
    /// The client's metadata object.
    pub metadata: serde_json::Value,
    /// `bridge|control`: how inbound calls are handled.
    pub inbound: String,
    /// The session's calls, newest first (only on `GET /v1/sessions/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallView>>,
}

impl From<&SessionRow> for SessionView {
    fn from(s: &SessionRow) -> Self {
        SessionView {
            id: s.id.clone(),
            state: s.state.clone(),
            masked_number: s.masked_number.clone(),
            party_a: s.party_a.clone(),
            party_b: s.party_b.clone(),
            record: s.record != 0,
            ttl_minutes: s.ttl_minutes,
            created_at: format_rfc3339(s.created_at),
            expires_at: format_rfc3339(s.expires_at),
            completed_at: s.completed_at.map(format_rfc3339),
            completion_reason: s.completion_reason.clone(),
            call_count: s.call_count,
            active_call_id: s.active_call_id.clone(),
            // Written by us from a validated object; an unreadable value is
            // shown as an empty object rather than failing the whole request.
            metadata: serde_json::from_str(&s.metadata)
                .unwrap_or_else(|_| serde_json::Value::Object(serde_json::Map::new())),
            inbound: s.inbound.clone(),
            calls: None,
        }
    }
}

impl SessionView {
    /// The view with its `calls` attached.
    pub fn with_calls(mut self, calls: &[CallRow]) -> Self {
        self.calls = Some(calls.iter().map(CallView::from).collect());
        self
    }

    /// As a JSON value (event `data`).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The `Call` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallView {
    /// `cal_…`
    pub id: String,
    /// Session id.
    pub session_id: String,
    /// `inbound|outbound`
    pub direction: String,
    /// `queued|ringing|answered|bridged|completed|failed|cancelled`
    pub state: String,
    /// Caller's real number.
    pub caller: String,
    /// Callee's real number.
    pub callee: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub answered_at: Option<String>,
    /// RFC 3339 UTC.
    pub ended_at: Option<String>,
    /// Answered duration.
    pub duration_ms: Option<i64>,
    /// Q.850 cause name.
    pub hangup_cause: Option<String>,
    /// `a|b|api|ttl|system`
    pub hangup_by: Option<String>,
    /// Final SIP status.
    pub sip_status: Option<i64>,
    /// Recording location, once ready.
    pub recording_url: Option<String>,
    /// Media quality per leg once the call is over: `a` is what Maskline
    /// received from the caller, `b` from the callee (packets, lost,
    /// loss_pct, jitter_ms, and the peer's RTCP figures).
    pub quality: Option<serde_json::Value>,
}

impl From<&CallRow> for CallView {
    fn from(c: &CallRow) -> Self {
        CallView {
            id: c.id.clone(),
            session_id: c.session_id.clone(),
            direction: c.direction.clone(),
            state: c.state.clone(),
            caller: c.caller.clone(),
            callee: c.callee.clone(),
            started_at: format_rfc3339(c.started_at),
            answered_at: c.answered_at.map(format_rfc3339),
            ended_at: c.ended_at.map(format_rfc3339),
            duration_ms: c.duration_ms,
            hangup_cause: c.hangup_cause.clone(),
            hangup_by: c.hangup_by.clone(),
            sip_status: c.sip_status,
            recording_url: c.recording_url.clone(),
            quality: c
                .quality
                .as_deref()
                .and_then(|q| serde_json::from_str(q).ok()),
        }
    }
}

impl CallView {
    /// As a JSON value (event `data`).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The error of a failed or timed-out operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationError {
    /// Stable code: `call_ended`, `invalid_state`, `engine_stopped`,
    /// `timeout`, `interrupted`.
    pub code: String,
    /// Detail.
    pub message: String,
}

/// The `Operation` object (`GET /v1/operations/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationView {
    /// UUID v4.
    pub id: String,
    /// The call.
    pub call_id: String,
    /// `answer|hangup|disconnect`
    pub command: String,
    /// The client's de-duplication key.
    pub command_uid: Option<String>,
    /// Q.850 cause (hangup).
    pub cause: Option<String>,
    /// `in_progress|succeeded|failed|timeout`
    pub status: String,
    /// Why it did not succeed.
    pub error: Option<OperationError>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, once the result is known.
    pub completed_at: Option<String>,
}

impl From<&OperationRow> for OperationView {
    fn from(o: &OperationRow) -> Self {
        OperationView {
            id: o.id.clone(),
            call_id: o.call_id.clone(),
            command: o.command.clone(),
            command_uid: o.command_uid.clone(),
            cause: o.cause.clone(),
            status: o.status.clone(),
            error: o.error.as_ref().map(|code| OperationError {
                code: code.clone(),
                message: o.error_message.clone().unwrap_or_default(),
            }),
            created_at: format_rfc3339(o.created_at),
            completed_at: o.completed_at.map(format_rfc3339),
        }
    }
}

impl OperationView {
    /// As a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The `data` of its `command.result` event: the operation with its id
    /// as `operation_id`.
    pub fn result_data(&self) -> serde_json::Value {
        let mut v = self.to_value();
        if let Some(obj) = v.as_object_mut() {
            if let Some(id) = obj.remove("id") {
                obj.insert("operation_id".into(), id);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_view_renders_contract_fields() {
        let row = SessionRow {
            id: "ses_x".into(),
            tenant_id: "ten_x".into(),
            masked_number: "+15550000001".into(),
            party_a: "+14155550101".into(),
            party_b: "+14155550102".into(),
            record: 1,
            ttl_minutes: 60,
            state: "open".into(),
            metadata: r#"{"order":"42"}"#.into(),
            created_at: 1_795_446_245_123,
            expires_at: 1_795_449_845_123,
            completed_at: None,
            completion_reason: None,
            call_count: 0,
            active_call_id: None,
            inbound: "control".into(),
        };
        let v = SessionView::from(&row).to_value();
        assert_eq!(v["inbound"], "control");
        assert_eq!(v["record"], serde_json::json!(true));
        assert_eq!(v["created_at"], "2026-11-23T15:04:05.123Z");
        assert_eq!(v["expires_at"], "2026-11-23T16:04:05.123Z");
        assert_eq!(v["completed_at"], serde_json::Value::Null);
        assert_eq!(v["metadata"]["order"], "42");
        assert!(v.get("calls").is_none());
        assert!(v.get("tenant_id").is_none());
        let with = SessionView::from(&row).with_calls(&[]).to_value();
        assert_eq!(with["calls"], serde_json::json!([]));
    }

    #[test]
    fn operation_view_and_command_result_data() {
        let row = OperationRow {
            id: "5f0c…".into(),
            tenant_id: "ten_x".into(),
            call_id: "cal_x".into(),
            command: "answer".into(),
            command_uid: None,
            cause: None,
            status: "timeout".into(),
            error: Some("timeout".into()),
            error_message: Some("no result".into()),
            created_at: 1_795_446_245_123,
            completed_at: Some(1_795_446_247_123),
        };
        let v = OperationView::from(&row).to_value();
        assert_eq!(v["id"], "5f0c…");
        assert_eq!(
            v["error"],
            serde_json::json!({"code": "timeout", "message": "no result"})
        );
        assert_eq!(v["completed_at"], "2026-11-23T15:04:07.123Z");
        assert!(v.get("tenant_id").is_none());
        let d = OperationView::from(&row).result_data();
        assert_eq!(d["operation_id"], "5f0c…");
        assert!(d.get("id").is_none());
        assert_eq!(
            (d["call_id"].clone(), d["status"].clone()),
            ("cal_x".into(), "timeout".into())
        );
        let ok = OperationRow {
            status: "succeeded".into(),
            error: None,
            error_message: None,
            ..row
        };
        assert_eq!(
            OperationView::from(&ok).to_value()["error"],
            serde_json::Value::Null
        );
    }
}
