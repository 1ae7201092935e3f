//! The calls of a load run: one masked session per call, with numbers
//! derived from the call's index so that every route and leg is unique.

use std::time::{Duration, SystemTime};

use maskline_engine::Route;

/// One call of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpec {
    /// 0-based index.
    pub index: usize,
    /// Session id of its route.
    pub session_id: String,
    /// The masked number dialled by A.
    pub masked: String,
    /// Party A (the caller; the UAC presents it in From).
    pub party_a: String,
    /// Party B (the engine dials it at the trunk; the UAS answers).
    pub party_b: String,
    /// Call-ID of the A leg.
    pub call_id: String,
}

impl CallSpec {
    /// The call with index `index`. Numbers are 11-digit E.164 (`+1555…`,
    /// `+1415…`, `+1416…`), so up to 10 million calls stay distinct.
    pub fn new(index: usize) -> CallSpec {
        CallSpec {
            index,
            session_id: format!("ses_load_{index}"),
            masked: format!("+1555{index:07}"),
            party_a: format!("+1415{index:07}"),
            party_b: format!("+1416{index:07}"),
            call_id: format!("load-{}-{index}@127.0.0.1", std::process::id()),
        }
    }

    /// The route that makes the masked number routable.
    pub fn route(&self, record: bool) -> Route {
        Route {
            session_id: self.session_id.clone(),
            tenant_id: "ten_load".into(),
            masked: self.masked.clone(),
            party_a: self.party_a.clone(),
            party_b: self.party_b.clone(),
            record,
            control: false,
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        }
    }

    /// From tag of the A leg.
    pub fn from_tag(&self) -> String {
        format!("a{}", self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_distinct_and_routable() {
        let a = CallSpec::new(7);
        let b = CallSpec::new(8);
        assert_eq!(a.masked, "+15550000007");
        assert_ne!(a.masked, b.masked);
        assert_ne!(a.call_id, b.call_id);
        let table = maskline_engine::RouteTable::new();
        table.upsert(a.route(false));
        match table.decide(&a.masked, &a.party_a) {
            maskline_engine::RouteDecision::Dial { callee, .. } => assert_eq!(callee, a.party_b),
            other => panic!("{other:?}"),
        }
    }
}
