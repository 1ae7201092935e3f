//! The masked-number table and the routing decision for inbound INVITEs.
//!
//! The control plane keeps the table in sync through the [`crate::EngineHandle`];
//! the SIP side asks [`RouteTable::decide`] what to do with an INVITE.

use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;

use crate::sip::e164;

/// An open session's route: who may call the masked number and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Session id (`ses_…`).
    pub session_id: String,
    /// Tenant id owning the session.
    pub tenant_id: String,
    /// The masked number, E.164 with `+`.
    pub masked: String,
    /// Party A's real number, E.164 with `+`.
    pub party_a: String,
    /// Party B's real number, E.164 with `+`.
    pub party_b: String,
    /// Whether calls of this session are recorded.
    pub record: bool,
    /// Inbound calls are held ringing for the control API (`answer`,
    /// `hangup`, `disconnect`) instead of being bridged at once; with no
    /// command within `[calls] control_timeout_secs` they are bridged.
    pub control: bool,
    /// When the session expires (informational for the engine; the control
    /// plane owns TTL timers).
    pub expires_at: SystemTime,
}

/// Result of routing an inbound INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Dial `callee`, showing `route.masked` as caller ID.
    Dial {
        /// The route that matched.
        route: Route,
        /// Real number of the caller (a party of the route).
        caller: String,
        /// Real number of the other party, to be dialled.
        callee: String,
    },
    /// No open session holds the number → 404.
    NoRoute,
    /// The caller is not a party of the session → 403.
    NotAParty,
}

/// Concurrent map from masked E.164 number to its route, plus the
/// sessions whose live call another node carries (on a cluster).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    inner: Arc<DashMap<String, Route>>,
    busy_elsewhere: Arc<DashMap<String, ()>>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert or replace a route (keyed by its normalised masked number).
    pub fn upsert(&self, mut route: Route) {
        route.masked = e164::normalize(&route.masked).unwrap_or(route.masked);
        self.inner.insert(route.masked.clone(), route);
    }

    /// Remove the route of a masked number.
    pub fn remove(&self, masked: &str) {
        let key = e164::normalize(masked).unwrap_or_else(|| masked.to_string());
        self.inner.remove(&key);
    }

    /// The route for a masked number, if any.
    pub fn get(&self, masked: &str) -> Option<Route> {
        let key = e164::normalize(masked)?;
        self.inner.get(&key).map(|r| r.clone())
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Mark (`busy = true`) or clear session `session_id` as having a live
    /// call on another node of a cluster: while marked, INVITEs for it are
    /// refused 486, as when this engine carries its call.
    pub fn set_busy_elsewhere(&self, session_id: &str, busy: bool) {
        if busy {
            self.busy_elsewhere.insert(session_id.to_string(), ());
        } else {
            self.busy_elsewhere.remove(session_id);
        }
    }

    /// Whether session `session_id` has a live call on another node.
    pub fn is_busy_elsewhere(&self, session_id: &str) -> bool {
        self.busy_elsewhere.contains_key(session_id)
    }

    /// The sessions marked busy on another node.
    pub fn busy_elsewhere(&self) -> Vec<String> {
        self.busy_elsewhere
            .iter()
            .map(|e| e.key().clone())
            .collect()
    }

    /// Decide what to do with an INVITE for `dialled` (Request-URI user) from
    /// `caller` (P-Asserted-Identity or From user).
    pub fn decide(&self, dialled: &str, caller: &str) -> RouteDecision {
        let Some(route) = self.get(dialled) else {
            return RouteDecision::NoRoute;
        };
        let Some(caller) = e164::normalize(caller) else {
            return RouteDecision::NotAParty;
        };
        if caller == route.party_a {
            let callee = route.party_b.clone();
            RouteDecision::Dial {
                route,
                caller,
                callee,
            }
        } else if caller == route.party_b {
            let callee = route.party_a.clone();
            RouteDecision::Dial {
                route,
                caller,
                callee,
            }
        } else {
            RouteDecision::NotAParty
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route {
            session_id: "ses_1".into(),
            tenant_id: "ten_1".into(),
            masked: "+15550000001".into(),
            party_a: "+14155550101".into(),
            party_b: "+14155550102".into(),
            record: false,
            control: false,
            expires_at: SystemTime::now(),
        }
    }

    #[test]
    fn routes_a_to_b_and_back_with_or_without_plus() {
        let t = RouteTable::new();
        t.upsert(route());
        match t.decide("15550000001", "+14155550101") {
            RouteDecision::Dial { callee, .. } => assert_eq!(callee, "+14155550102"),
            other => panic!("{other:?}"),
        }
        match t.decide("+15550000001", "14155550102") {
            RouteDecision::Dial { callee, .. } => assert_eq!(callee, "+14155550101"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_number_and_stranger() {
        let t = RouteTable::new();
        t.upsert(route());
        assert_eq!(
            t.decide("+15550000009", "+14155550101"),
            RouteDecision::NoRoute
        );
        assert_eq!(
            t.decide("+15550000001", "+19995550000"),
            RouteDecision::NotAParty
        );
        t.remove("15550000001");
        assert_eq!(
            t.decide("+15550000001", "+14155550101"),
            RouteDecision::NoRoute
        );
    }

    #[test]
    fn sessions_busy_elsewhere_are_marked_and_cleared_in_every_clone() {
        let t = RouteTable::new();
        let seen_by_sip = t.clone();
        assert!(!seen_by_sip.is_busy_elsewhere("ses_1"));
        t.set_busy_elsewhere("ses_1", true);
        t.set_busy_elsewhere("ses_1", true);
        assert!(seen_by_sip.is_busy_elsewhere("ses_1"));
        assert!(!seen_by_sip.is_busy_elsewhere("ses_2"));
        assert_eq!(seen_by_sip.busy_elsewhere(), ["ses_1"]);
        t.set_busy_elsewhere("ses_1", false);
        assert!(!seen_by_sip.is_busy_elsewhere("ses_1"));
        assert!(seen_by_sip.busy_elsewhere().is_empty());
    }
}
