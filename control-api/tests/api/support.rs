//! Test support: temp dirs, configs, a started server and an HTTP client.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use maskline::util::time::Clock;
use maskline::{Running, ServeOptions};
use reqwest::StatusCode;
use serde_json::Value;
use sip_config::{Config, TenantConfig};

pub const ACME_KEY: &str = "acme-test-key";
pub const BETA_KEY: &str = "beta-test-key";
pub const ACME_NUMBERS: [&str; 3] = ["+15550000001", "+15550000002", "+15550000003"];
pub const BETA_NUMBER: &str = "+15550000100";
pub const PARTY_A: &str = "+14155550101";
pub const PARTY_B: &str = "+14155550102";

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("maskline-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        crate::backend::drop_for(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tenant(name: &str, key: &str, numbers: &[&str]) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        api_keys: vec![key.into()],
        numbers: numbers.iter().map(|s| s.to_string()).collect(),
        default_ttl_minutes: 60,
        max_ttl_minutes: 240,
        ..Default::default()
    }
}

/// Ephemeral ports everywhere; the store in `dir`; tenants acme and beta.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.sip.listen = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    c.http.listen = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    c.store.url = crate::backend::store_url(dir);
    c.recording.dir = dir.join("recordings");
    c.tenants = vec![
        tenant("acme", ACME_KEY, &ACME_NUMBERS),
        tenant("beta", BETA_KEY, &[BETA_NUMBER]),
    ];
    c
}

pub fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A started server plus a client pointed at it.
pub struct Server {
    pub running: Running,
    pub clock: Clock,
    pub base: String,
    pub client: reqwest::Client,
}

impl Server {
    pub async fn start(config: &Config, clock: Clock) -> Server {
        Server::start_with(
            config,
            ServeOptions {
                clock,
                ..ServeOptions::default()
            },
        )
        .await
    }

    pub async fn start_with(config: &Config, options: ServeOptions) -> Server {
        let clock = options.clock.clone();
        let running = maskline::start(config, options)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        let base = format!("http://{}", running.http_addr());
        Server {
            running,
            clock,
            base,
            client: reqwest::Client::new(),
        }
    }

    /// A server on a fresh store in `dir` with a manual clock at wall time.
    pub async fn fresh(dir: &TempDir) -> Server {
        Server::start(&config(&dir.0), Clock::manual(wall_now_ms())).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap_or_else(|e| panic!("request: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
        (status, json)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .header("X-API-Key", key),
        )
        .await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("X-API-Key", key)
                .json(body),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, key: &str, body: &'static str) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("X-API-Key", key)
                .body(body),
        )
        .await
    }

    /// Create a session for acme; panics unless 201.
    pub async fn create(&self, body: Value) -> Value {
        let (status, json) = self.post("/v1/sessions", ACME_KEY, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }

    pub async fn create_ab(&self) -> Value {
        self.create(serde_json::json!({"party_a": PARTY_A, "party_b": PARTY_B}))
            .await
    }

    pub async fn complete(&self, id: &str) -> Value {
        let (status, json) = self
            .post(
                &format!("/v1/sessions/{id}/complete"),
                ACME_KEY,
                &Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    pub async fn session(&self, id: &str) -> Value {
        let (status, json) = self.get(&format!("/v1/sessions/{id}"), ACME_KEY).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// Event types of a tenant, oldest first.
    pub async fn event_types(&self, tenant: &str) -> Vec<(String, Value)> {
        let store = self.running.store();
        let mut conn = store
            .pool()
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let t = maskline::store::tenants::find_by_name(&mut conn, tenant)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("tenant {tenant}"));
        maskline::store::events::list_after(&mut conn, &t.id, 0, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|e| (e.kind, serde_json::from_str(&e.data).unwrap_or(Value::Null)))
            .collect()
    }

    pub async fn stop(self) {
        self.running
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("shutdown: {e}"));
    }
}

impl Server {
    pub async fn put(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            self.client
                .put(format!("{}{path}", self.base))
                .header("X-API-Key", key)
                .json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(
            self.client
                .delete(format!("{}{path}", self.base))
                .header("X-API-Key", key),
        )
        .await
    }

    /// Persist engine events as the engine consumer would (and publish them).
    pub async fn feed(&self, events: &[maskline_engine::EngineEvent]) {
        for e in events {
            maskline::service::engine_events::apply(self.running.events(), self.running.store(), e)
                .await
                .unwrap_or_else(|err| panic!("{e:?}: {err}"));
        }
    }

    /// A ringing inbound call `call_id` (A → B) of session `sid`.
    pub async fn call_started(&self, call_id: &str, sid: &str) {
        self.feed(&[maskline_engine::EngineEvent::CallInitiated {
            call_id: call_id.into(),
            session_id: sid.into(),
            direction: maskline_engine::Direction::Inbound,
            caller: PARTY_A.into(),
            callee: PARTY_B.into(),
            at: maskline::util::time::ms_to_system_time(self.clock.now_ms()),
        }])
        .await;
    }

    /// Call `call_id` of session `sid` ended (A hung up before answer).
    pub async fn call_ended(&self, call_id: &str, sid: &str) {
        self.feed(&[maskline_engine::EngineEvent::CallHangup {
            call_id: call_id.into(),
            session_id: sid.into(),
            cause: "ORIGINATOR_CANCEL".into(),
            sip_status: Some(487),
            hangup_by: maskline_engine::HangupBy::A,
            answered: false,
            at: maskline::util::time::ms_to_system_time(self.clock.now_ms()),
            media: maskline_engine::MediaStats::default(),
        }])
        .await;
    }
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}
