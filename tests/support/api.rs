//! The REST client: what a platform backend does with its API key.

use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::{json, Value};

use crate::error::{E2eError, Result};

/// A session as created by `POST /v1/sessions`.
#[derive(Debug, Clone)]
pub struct Session {
    /// `ses_…`
    pub id: String,
    /// The pool number allocated to the session (E.164).
    pub masked_number: String,
    /// The whole response body.
    pub json: Value,
}

/// HTTP client for one Maskline instance, sending `X-API-Key`.
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    base: String,
    key: String,
}

impl Api {
    /// A client for `base` (`http://127.0.0.1:PORT`) with API key `key`.
    pub fn new(base: String, key: &str) -> Result<Api> {
        let client = Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| E2eError::Http {
                context: "building the client".into(),
                source,
            })?;
        Ok(Api {
            client,
            base,
            key: key.to_string(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with an optional JSON body; returns the status
    /// and the body parsed as JSON (`Value::Null` when empty or not JSON).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let context = format!("{method} {path}");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", &self.key);
        if let Some(body) = body {
            req = req.json(body);
        }
        let http_err = |source| E2eError::Http {
            context: context.clone(),
            source,
        };
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(http_err)?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// Like [`Api::request`] but fails unless the status is `expected`.
    pub async fn expect_status(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: u16,
    ) -> Result<Value> {
        let context = format!("{method} {path}");
        let (status, json) = self.request(method, path, body).await?;
        if status != expected {
            return Err(E2eError::Status {
                context,
                status,
                expected,
                body: json.to_string(),
            });
        }
        Ok(json)
    }

    /// `GET /healthz` status, or an error when nothing answers.
    pub async fn healthz(&self) -> Result<u16> {
        Ok(self.request(Method::GET, "/healthz", None).await?.0)
    }

    /// `POST /v1/sessions` → 201.
    pub async fn create_session(
        &self,
        party_a: &str,
        party_b: &str,
        ttl_minutes: Option<u32>,
    ) -> Result<Session> {
        let mut body = json!({ "party_a": party_a, "party_b": party_b });
        if let Some(ttl) = ttl_minutes {
            body["ttl_minutes"] = json!(ttl);
        }
        let json = self
            .expect_status(Method::POST, "/v1/sessions", Some(&body), 201)
            .await?;
        let field = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| E2eError::Unexpected(format!("session without `{name}`: {json}")))
        };
        Ok(Session {
            id: field("id")?,
            masked_number: field("masked_number")?,
            json: json.clone(),
        })
    }

    /// `GET /v1/sessions/{id}` → 200.
    pub async fn get_session(&self, id: &str) -> Result<Value> {
        self.expect_status(Method::GET, &format!("/v1/sessions/{id}"), None, 200)
            .await
    }

    /// `POST /v1/sessions/{id}/complete` → 200.
    pub async fn complete_session(&self, id: &str) -> Result<Value> {
        self.expect_status(
            Method::POST,
            &format!("/v1/sessions/{id}/complete"),
            Some(&json!({})),
            200,
        )
        .await
    }
}
