//! Session timers (RFC 4028) on the A leg: when the caller asks for
//! `Session-Expires`, the 200 OK confirms it with the caller as refresher,
//! and a session not refreshed (re-INVITE or UPDATE) in time is torn down,
//! so a call whose caller vanished does not hold a session forever.

use std::time::{Duration, Instant};

use rsipstack::sip::prelude::*;
use rsipstack::sip::Request;

/// Smallest interval accepted (`422` with `Min-SE` below it).
pub const MIN_SE: u64 = 90;

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Interval in seconds.
    pub interval: u64,
    /// Whether the caller supports `timer` (then we answer `Require: timer`).
    pub supported: bool,
}

impl SessionTimer {
    /// Read `Session-Expires` and `Supported`/`Require` from an INVITE.
    pub fn from_request(req: &Request) -> Option<SessionTimer> {
        let value = req
            .header_value("Session-Expires")
            .or_else(|| req.header_value("x"))?;
        let interval = value.split(';').next()?.trim().parse::<u64>().ok()?;
        let has_timer = |h: &str| {
            req.header_value(h)
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")))
        };
        Some(SessionTimer {
            interval,
            supported: has_timer("Supported") || has_timer("Require"),
        })
    }

    /// Headers for our 2xx.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![(
            "Session-Expires",
            format!("{};refresher=uac", self.interval),
        )];
        if self.supported {
            h.push(("Require", "timer".into()));
        }
        h
    }

    /// When to give up on a refresh (RFC 4028 §10: BYE before expiry, by
    /// the smaller of 32 s and a third of the interval).
    pub fn deadline(&self, from: Instant) -> Instant {
        let margin = (self.interval / 3).min(32);
        from + Duration::from_secs(self.interval.saturating_sub(margin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message;
    use rsipstack::sip::SipMessage;

    fn invite(extra: &str) -> Request {
        let t = format!("INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n");
        match message::parse(t.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn reads_and_answers() {
        assert_eq!(SessionTimer::from_request(&invite("")), None);
        let t = SessionTimer::from_request(&invite(
            "Session-Expires: 1800;refresher=uac\r\nSupported: timer, 100rel\r\n",
        ))
        .unwrap();
        assert_eq!(
            t,
            SessionTimer {
                interval: 1800,
                supported: true
            }
        );
        assert_eq!(
            t.response_headers(),
            vec![
                ("Session-Expires", "1800;refresher=uac".into()),
                ("Require", "timer".into())
            ]
        );
        let now = Instant::now();
        assert_eq!(t.deadline(now), now + Duration::from_secs(1768));
        let short = SessionTimer::from_request(&invite("Session-Expires: 90\r\n")).unwrap();
        assert!(!short.supported);
        assert_eq!(short.deadline(now), now + Duration::from_secs(60));
    }
}
