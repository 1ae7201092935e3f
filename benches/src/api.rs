//! `api-load`: `POST /v1/sessions` as fast as the control API answers, over
//! `connections` keep-alive HTTP/1.1 connections (closed loop, one request
//! in flight per connection), for `duration`. Reports requests/s by status
//! and latency percentiles, and can write the sessions it created
//! (`party_a;masked;party_b`) for SIPp's injection file.
//!
//! A raw HTTP/1.1 client on purpose: a few dozen lines, no HTTP stack in
//! the bench crate, and nothing between the socket and the clock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::load::Histogram;

/// Parameters of an API run.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Control API address.
    pub http: SocketAddr,
    /// `X-API-Key`.
    pub api_key: String,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests in all (0 = no cap).
    pub max_requests: u64,
    /// First index of the generated parties (`+1415…`/`+1416…`).
    pub first_index: u64,
}

/// Why the run could not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No connection could be opened.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiReport {
    /// Responses by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that failed at the socket level (reconnected after).
    pub io_errors: u64,
    /// Latency of every response.
    pub latency: Histogram,
    /// Wall time, s.
    pub secs: f64,
    /// `party_a;masked;party_b` of each 201.
    pub created: Vec<String>,
}

impl ApiReport {
    /// 201 responses per second.
    pub fn created_per_sec(&self) -> f64 {
        let n = self.statuses.get(&201).copied().unwrap_or(0);
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }

    /// One `key=value` line for scripts.
    pub fn summary(&self) -> String {
        let total: u64 = self.statuses.values().sum();
        let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{:.2}", v / 1000.0));
        format!(
            "summary requests={total} created={} io_errors={} secs={:.2} created_per_sec={:.0} \
p50_ms={} p99_ms={} max_ms={} statuses={}",
            self.statuses.get(&201).copied().unwrap_or(0),
            self.io_errors,
            self.secs,
            self.created_per_sec(),
            f(self.latency.quantile_us(0.5)),
            f(self.latency.quantile_us(0.99)),
            f(self.latency.max_us()),
            self.statuses
                .iter()
                .map(|(status, n)| format!("{status}:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

/// The JSON string value of `"key":"…"` in `body` (no escapes expected).
pub fn json_str<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = body.find(&pat)? + pat.len();
    let len = body.get(start..)?.find('"')?;
    body.get(start..start + len)
}

/// Status and body of one HTTP/1.1 response read from `buf` (which must
/// hold all of it): `None` while incomplete.
pub fn parse_response(buf: &[u8]) -> Option<(u16, usize, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(buf.get(..head_end)?).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= head_end + len).then_some((status, head_end, len))
}

struct ConnResult {
    statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    latency: Histogram,
    created: Vec<String>,
}

async fn connection(
    cfg: ApiConfig,
    conn: u64,
    deadline: Instant,
    budget: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> ConnResult {
    let mut out = ConnResult {
        statuses: BTreeMap::new(),
        io_errors: 0,
        latency: Histogram::new(),
        created: Vec::new(),
    };
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(8192);
    let mut n = 0u64;
    while Instant::now() < deadline {
        if budget.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            budget.store(0, std::sync::atomic::Ordering::Relaxed);
            break;
        }
        // 100 000 parties per connection, 7 digits: up to 99 connections.
        let index = (cfg.first_index + conn * 100_000 + n) % 10_000_000;
        n += 1;
        let (a, b) = (format!("+1415{index:07}"), format!("+1416{index:07}"));
        let body = format!("{{\"party_a\":\"{a}\",\"party_b\":\"{b}\"}}");
        let req = format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\n\
Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            cfg.http,
            cfg.api_key,
            body.len()
        );
        if stream.is_none() {
            stream = TcpStream::connect(cfg.http).await.ok();
            if let Some(s) = &stream {
                let _ = s.set_nodelay(true);
            }
        }
        let Some(s) = stream.as_mut() else {
            out.io_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let sent = Instant::now();
        let result = async {
            s.write_all(req.as_bytes()).await?;
            buf.clear();
            loop {
                if let Some(r) = parse_response(&buf) {
                    return Ok(r);
                }
                let mut chunk = [0u8; 4096];
                let got = s.read(&mut chunk).await?;
                if got == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
                buf.extend_from_slice(chunk.get(..got).unwrap_or_default());
            }
        }
        .await;
        match result {
            Ok((status, start, len)) => {
                out.latency
                    .record_ns(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
                *out.statuses.entry(status).or_default() += 1;
                if status == 201 {
                    let body = std::str::from_utf8(buf.get(start..start + len).unwrap_or_default())
                        .unwrap_or_default();
                    if let Some(m) = json_str(body, "masked_number") {
                        out.created.push(format!("{a};{m};{b}"));
                    }
                }
            }
            Err(_) => {
                out.io_errors += 1;
                stream = None;
            }
        }
    }
    out
}

/// Run the API load. The calling runtime does the work.
pub async fn run(cfg: &ApiConfig) -> Result<ApiReport, ApiError> {
    TcpStream::connect(cfg.http)
        .await
        .map_err(|e| ApiError::Connect(cfg.http, e))?;
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let cap = if cfg.max_requests == 0 {
        u64::MAX / 2
    } else {
        cfg.max_requests
    };
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(cap));
    let mut set = JoinSet::new();
    for conn in 0..cfg.connections.max(1) as u64 {
        set.spawn(connection(cfg.clone(), conn, deadline, budget.clone()));
    }
    let mut report = ApiReport::default();
    while let Some(r) = set.join_next().await {
        let Ok(r) = r else { continue };
        for (k, v) in r.statuses {
            *report.statuses.entry(k).or_default() += v;
        }
        report.io_errors += r.io_errors;
        report.latency.merge(&r.latency);
        report.created.extend(r.created);
    }
    report.secs = start.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_responses_only() {
        let r = b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_response(r), Some((201, r.len() - 5, 5)));
        assert_eq!(parse_response(&r[..r.len() - 1]), None);
        assert_eq!(parse_response(b"HTTP/1.1 20"), None);
        assert_eq!(
            json_str(
                r#"{"id":"ses_1","masked_number":"+15550000001"}"#,
                "masked_number"
            ),
            Some("+15550000001")
        );
        assert_eq!(json_str("{}", "masked_number"), None);
    }
}
