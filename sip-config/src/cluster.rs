//! `[cluster]`: several Maskline nodes sharing one PostgreSQL.
//!
//! ```toml
//! [cluster]
//! node_id = "node-a"                 # unset: a single node (no cluster)
//! secret = "…"                       # the same on every node, 16+ chars
//! lease_secs = 10                    # a node silent this long is dead
//! advertise_http = "10.0.0.5:8080"   # where the other nodes reach this
//!                                    # node's HTTP (default: http.listen)
//! ```
//!
//! A node with a `node_id` registers itself in the store's `nodes` table
//! and renews its lease every `lease_secs / 3`; the others forward commands
//! for calls it owns to `advertise_http`, authenticated with `secret`, and
//! end its calls once its lease has run out.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::ConfigProblem;
use crate::model::Config;

/// Shortest `cluster.secret` accepted.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest `cluster.node_id`.
pub const MAX_NODE_ID_LEN: usize = 64;
/// Shortest lease: three heartbeats a second would be needed below it.
pub const MIN_LEASE_SECS: u64 = 3;

/// `[cluster]`
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (`[A-Za-z0-9._-]`, at most
    /// 64 characters). Unset: a single node, no cluster.
    pub node_id: Option<String>,
    /// Shared by every node: authenticates the internal forwarding route.
    pub secret: Option<String>,
    /// A node whose lease (renewed every `lease_secs / 3`) ran out this
    /// long ago is dead: a survivor ends its calls.
    pub lease_secs: u64,
    /// `ip:port` where the other nodes reach this node's HTTP; defaults to
    /// `http.listen` (which then must not be a wildcard address).
    pub advertise_http: Option<SocketAddr>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            secret: None,
            lease_secs: 10,
            advertise_http: None,
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("lease_secs", &self.lease_secs)
            .field("advertise_http", &self.advertise_http)
            .finish()
    }
}

impl ClusterConfig {
    /// Whether this node is part of a cluster (`node_id` is set).
    pub fn enabled(&self) -> bool {
        self.node_id.as_deref().is_some_and(|n| !n.is_empty())
    }
}

/// Whether `id` is a valid `cluster.node_id`.
pub fn is_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The problems of `config.cluster` (with the keys it depends on).
pub(crate) fn check(config: &Config) -> Vec<ConfigProblem> {
    let c = &config.cluster;
    let mut out = Vec::new();
    let mut add = |key: &str, message: String| out.push(ConfigProblem::new(key, message));
    let Some(node_id) = c.node_id.as_deref() else {
        if c.secret.is_some() || c.advertise_http.is_some() {
            add(
                "cluster.node_id",
                "is required when other [cluster] keys are set; name this node, e.g. \"node-a\""
                    .into(),
            );
        }
        return out;
    };
    if !is_node_id(node_id) {
        add(
            "cluster.node_id",
            format!(
                "`{node_id}` is not a node name: 1–{MAX_NODE_ID_LEN} characters of A–Z, a–z, 0–9, `.`, `_`, `-`"
            ),
        );
    }
    match c.secret.as_deref() {
        None => add(
            "cluster.secret",
            format!("is required in a cluster: the same random string of {MIN_SECRET_LEN}+ characters on every node"),
        ),
        Some(s) if s.len() < MIN_SECRET_LEN => add(
            "cluster.secret",
            format!("is {} characters; use at least {MIN_SECRET_LEN} random ones", s.len()),
        ),
        Some(_) => {}
    }
    if c.lease_secs < MIN_LEASE_SECS {
        add(
            "cluster.lease_secs",
            format!("must be at least {MIN_LEASE_SECS}, e.g. 10"),
        );
    }
    let url = config.store.url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        add(
            "store.url",
            "a cluster shares one PostgreSQL: set postgres://user:pass@host/db on every node"
                .into(),
        );
    }
    let http = c.advertise_http.unwrap_or(config.http.listen);
    if http.ip().is_unspecified() || http.port() == 0 {
        add(
            "cluster.advertise_http",
            format!(
                "other nodes cannot reach {http}; set the ip:port of this node's HTTP as they see it, e.g. \"10.0.0.5:8080\""
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Config) -> Vec<String> {
        check(c).into_iter().map(|p| p.key).collect()
    }

    fn node() -> Config {
        let mut c = Config::default();
        c.store.url = "postgres://maskline@db/maskline".into();
        c.cluster = ClusterConfig {
            node_id: Some("node-a".into()),
            secret: Some("0123456789abcdef".into()),
            ..ClusterConfig::default()
        };
        c
    }

    #[test]
    fn no_cluster_by_default_and_a_complete_node_is_valid() {
        assert!(!Config::default().cluster.enabled());
        assert!(keys(&Config::default()).is_empty());
        assert!(node().cluster.enabled());
        assert!(keys(&node()).is_empty(), "{:?}", check(&node()));
    }

    #[test]
    fn each_problem_names_its_key() {
        let mut c = node();
        c.cluster.node_id = Some("node a!".into());
        c.cluster.secret = Some("short".into());
        c.cluster.lease_secs = 1;
        c.store.url = "sqlite://x.db".into();
        c.http.listen = "0.0.0.0:8080".parse().unwrap_or(c.http.listen);
        assert_eq!(
            keys(&c),
            [
                "cluster.node_id",
                "cluster.secret",
                "cluster.lease_secs",
                "store.url",
                "cluster.advertise_http"
            ]
        );
        c.cluster.advertise_http = "10.0.0.5:8080".parse().ok();
        assert!(!keys(&c).contains(&"cluster.advertise_http".to_string()));
        let mut c = node();
        c.cluster.secret = None;
        assert_eq!(keys(&c), ["cluster.secret"]);
        let mut c = Config::default();
        c.cluster.secret = Some("0123456789abcdef".into());
        assert_eq!(keys(&c), ["cluster.node_id"]);
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let text = format!("{:?}", node().cluster);
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(text.contains("node-a"));
    }
}
