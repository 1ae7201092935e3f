//! Softphone side of the SIP port: REGISTER with digest authentication
//! (RFC 3261 §10 and §22, RFC 8760) and the 407 challenge of INVITEs from
//! registered users, like a PBX does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rsipstack::sip::prelude::*;
use rsipstack::sip::Request;

use super::shared::Shared;
use crate::handle::RegistrationEvent;
use crate::sip::auth::AuthError;
use crate::sip::registrar::{self, contact_list};
use crate::sip::transport::{response_endpoint, Endpoint};
use crate::sip::{e164, ids, message};

/// Realm of our challenges.
pub(crate) const REALM: &str = "maskline";
/// A nonce is good for this long; after it the client gets `stale=true`.
const NONCE_TTL_SECS: u64 = 300;
/// How often expired bindings are swept.
const SWEEP: Duration = Duration::from_secs(15);

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Outcome of checking a request's digest credentials.
pub(crate) enum Authn {
    /// Authenticated as this username.
    User(String),
    /// Challenge sent; stop processing.
    Challenged,
}

/// Verify `header` (`Authorization` or `Proxy-Authorization`) of `req`, or
/// answer it with a `status` (401/407) challenge.
pub(crate) async fn authenticate(
    shared: &Shared,
    req: &Request,
    src: Endpoint,
    header: &str,
    status: u16,
) -> Authn {
    let now = now_unix();
    let method = req.method.to_string();
    let stale = match req.header_value(header) {
        Some(value) => {
            match shared.nonce.verify(
                &value,
                REALM,
                &method,
                |u| shared.settings.users.get(u).cloned(),
                now,
                NONCE_TTL_SECS,
            ) {
                Ok(user) => return Authn::User(user),
                Err(AuthError::StaleNonce) => true,
                Err(e) => {
                    tracing::info!(%src, error = %e, "digest authentication failed");
                    false
                }
            }
        }
        None => false,
    };
    let challenge_header = if status == 401 {
        "WWW-Authenticate"
    } else {
        "Proxy-Authenticate"
    };
    let extra: Vec<(&str, String)> = shared
        .nonce
        .challenge(REALM, &shared.settings.digest_algorithms, stale, now)
        .into_iter()
        .map(|v| (challenge_header, v))
        .collect();
    let resp = message::response(req, status, Some(&ids::new_tag()), &extra, None);
    shared
        .send(response_endpoint(req, src), &resp.to_bytes())
        .await;
    Authn::Challenged
}

/// Handle an out-of-dialog REGISTER.
pub(crate) async fn on_register(shared: &Arc<Shared>, req: Request, src: Endpoint) {
    // The address of record is a SIP or SIPS URI (RFC 3261 §10.2; RFC
    // 4475 unksm2): anything else is a bad request, not a challenge.
    let to_is_sip = req
        .to_header()
        .ok()
        .and_then(|t| t.uri().ok())
        .is_some_and(|u| {
            matches!(
                u.scheme,
                Some(rsipstack::sip::uri::Scheme::Sip | rsipstack::sip::uri::Scheme::Sips)
            )
        });
    if !to_is_sip {
        let resp = message::response(&req, 400, Some(&ids::new_tag()), &[], None);
        shared
            .send(response_endpoint(&req, src), &resp.to_bytes())
            .await;
        return;
    }
    let user = match authenticate(shared, &req, src, "Authorization", 401).await {
        Authn::User(u) => u,
        Authn::Challenged => return,
    };
    // The address of record must be the authenticated user's.
    let aor = req
        .to_header()
        .ok()
        .and_then(|t| t.uri().ok())
        .and_then(|u| message::uri_user(&u))
        .and_then(|u| e164::normalize(&u));
    let Some(username) = e164::normalize(&user).filter(|u| Some(u) == aor.as_ref()) else {
        let resp = message::response(&req, 403, Some(&ids::new_tag()), &[], None);
        shared
            .send(response_endpoint(&req, src), &resp.to_bytes())
            .await;
        return;
    };
    let now = now_unix();
    let outcome = shared
        .registrar
        .lock()
        .map(|mut r| r.register(&username, &req, src, now))
        .map_err(|_| ());
    let resp = match outcome {
        Ok(Ok(bindings)) => {
            let mut extra: Vec<(&str, String)> = contact_list(&bindings, now)
                .into_iter()
                .map(|c| ("Contact", c))
                .collect();
            extra.push(("Date", httpdate(now)));
            tracing::debug!(user = %username, contacts = bindings.len(), %src, "registered");
            let _ = shared.registrations.send(RegistrationEvent {
                username: username.clone(),
                bindings,
            });
            message::response(&req, 200, Some(&ids::new_tag()), &extra, None)
        }
        Ok(Err(e)) => {
            let mut extra = Vec::new();
            if e.status() == 423 {
                extra.push(("Min-Expires", registrar::MIN_EXPIRES.to_string()));
            }
            message::response(&req, e.status(), Some(&ids::new_tag()), &extra, None)
        }
        Err(_) => message::response(&req, 500, Some(&ids::new_tag()), &[], None),
    };
    shared
        .send(response_endpoint(&req, src), &resp.to_bytes())
        .await;
}

/// Periodically drop expired bindings and report the users that changed.
pub(crate) async fn sweep_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP);
    loop {
        tick.tick().await;
        let now = now_unix();
        let changed: Vec<RegistrationEvent> = match shared.registrar.lock() {
            Ok(mut r) => r
                .expire(now)
                .into_iter()
                .map(|u| RegistrationEvent {
                    bindings: r.lookup(&u, now),
                    username: u,
                })
                .collect(),
            Err(_) => continue,
        };
        for ev in changed {
            let _ = shared.registrations.send(ev);
        }
    }
}

/// RFC 7231 IMF-fixdate for the `Date` header.
fn httpdate(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil from days (H. Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn httpdate_formats() {
        assert_eq!(super::httpdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::httpdate(1_795_447_728),
            "Mon, 23 Nov 2026 15:28:48 GMT"
        );
    }
}
