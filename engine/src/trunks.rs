//! The carrier trunks: which trunk carries a number (longest prefix, then
//! priority, skipping trunks marked down by the OPTIONS keep-alive), and
//! their live state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sip_config::TrunkConfig;

use crate::b2bua::TrunkCredentials;
use crate::sip::transport::Endpoint;

/// One candidate destination for an outbound leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkTarget {
    /// Trunk name (logs).
    pub name: String,
    /// Where the INVITE goes.
    pub endpoint: Endpoint,
    /// Digest credentials for a 401/407 from it.
    pub credentials: Option<TrunkCredentials>,
}

/// The configured trunks and whether each is up.
#[derive(Debug, Clone)]
pub struct Trunks {
    configs: Arc<Vec<TrunkConfig>>,
    up: Arc<Vec<AtomicBool>>,
}

impl Trunks {
    /// All trunks start up.
    pub fn new(configs: Vec<TrunkConfig>) -> Self {
        let up = configs.iter().map(|_| AtomicBool::new(true)).collect();
        Trunks {
            configs: Arc::new(configs),
            up: Arc::new(up),
        }
    }

    /// The configurations, in config order.
    pub fn configs(&self) -> &[TrunkConfig] {
        &self.configs
    }

    /// Mark trunk `index` up or down; returns whether it changed.
    pub fn set_up(&self, index: usize, up: bool) -> bool {
        self.up
            .get(index)
            .is_some_and(|u| u.swap(up, Ordering::Relaxed) != up)
    }

    /// Whether trunk `index` is up.
    pub fn is_up(&self, index: usize) -> bool {
        self.up
            .get(index)
            .is_some_and(|u| u.load(Ordering::Relaxed))
    }

    /// Whether `ip` may send INVITEs in as a carrier.
    pub fn is_trusted_source(&self, ip: std::net::IpAddr) -> bool {
        self.configs
            .iter()
            .any(|t| t.inbound_cidrs.iter().any(|c| c.contains(ip)))
    }

    /// Trunks that carry `number` (E.164), best first: longest matching
    /// prefix (a trunk with no prefixes matches with length 0), then lower
    /// `priority`, then config order. Trunks that are down come last, so a
    /// call still has a chance when every trunk looks down.
    pub fn candidates(&self, number: &str) -> Vec<TrunkTarget> {
        let mut scored: Vec<(bool, std::cmp::Reverse<usize>, u32, usize)> = self
            .configs
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let matched = if t.prefixes.is_empty() {
                    Some(0)
                } else {
                    t.prefixes
                        .iter()
                        .filter(|p| number.starts_with(p.as_str()))
                        .map(|p| p.len())
                        .max()
                }?;
                Some((!self.is_up(i), std::cmp::Reverse(matched), t.priority, i))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .filter_map(|(_, _, _, i)| self.configs.get(i))
            .map(|t| TrunkTarget {
                name: t.name.clone(),
                endpoint: Endpoint {
                    transport: t.transport.into(),
                    addr: t.address,
                },
                credentials: t.username.clone().zip(t.password.clone()).map(
                    |(username, password)| TrunkCredentials {
                        username,
                        password,
                        realm: t.realm.clone(),
                    },
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(name: &str, port: u16, prefixes: &[&str], priority: u32) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            address: ([127, 0, 0, 1], port).into(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            priority,
            ..TrunkConfig::default()
        }
    }

    fn names(t: &Trunks, n: &str) -> Vec<String> {
        t.candidates(n).into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn longest_prefix_then_priority_then_down_last() {
        let t = Trunks::new(vec![
            trunk("any-backup", 1, &[], 9),
            trunk("us", 2, &["+1"], 5),
            trunk("us-ca", 3, &["+1415", "+1650"], 5),
            trunk("any", 4, &[], 1),
            trunk("uk", 5, &["+44"], 0),
        ]);
        assert_eq!(
            names(&t, "+14155550101"),
            ["us-ca", "us", "any", "any-backup"]
        );
        assert_eq!(names(&t, "+12125550101"), ["us", "any", "any-backup"]);
        assert_eq!(names(&t, "+33155550101"), ["any", "any-backup"]);
        assert!(t.set_up(2, false));
        assert!(!t.set_up(2, false), "no change");
        assert_eq!(
            names(&t, "+14155550101"),
            ["us", "any", "any-backup", "us-ca"]
        );
    }

    #[test]
    fn credentials_and_sources() {
        let mut c = trunk("a", 1, &[], 0);
        c.username = Some("u".into());
        c.password = Some("p".into());
        let t = Trunks::new(vec![c]);
        assert_eq!(
            t.candidates("+1")
                .first()
                .and_then(|c| c.credentials.clone())
                .map(|c| c.username),
            Some("u".into())
        );
        assert!(t.is_trusted_source("127.0.0.1".parse().unwrap()));
        assert!(!t.is_trusted_source("127.0.0.2".parse().unwrap()));
    }
}
