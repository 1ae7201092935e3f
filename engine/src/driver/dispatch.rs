//! The SIP receive loop: parse each datagram, hand in-dialog traffic to its
//! call actor, answer out-of-dialog requests, and admit new calls.
//!
//! Admission spends nothing before a request is authorised and routed: the
//! source ACL, Max-Forwards, routing and the one-call-per-session check come
//! before any RTP port is reserved or any task is spawned.

use std::sync::Arc;

use rsipstack::sip::prelude::*;
use rsipstack::sip::{Method, Request, SipMessage};
use tokio::sync::mpsc;

use super::call_actor::{self, NewCall, Start};
use super::shared::{CallRef, Shared, MAILBOX};
use crate::b2bua::outbound::ALLOW;
use crate::b2bua::Leg;
use crate::metrics::Metrics;
use crate::routing::RouteDecision;
use crate::sip::transport::{response_endpoint, Endpoint};
use crate::sip::{e164, ids, message};

pub(crate) async fn receive_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; message::MAX_MESSAGE_SIZE + 1];
    loop {
        let (len, src) = match shared.socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable and friends surface here on Linux.
                tracing::trace!(error = %e, "SIP recv error");
                continue;
            }
        };
        let data = &buf[..len];
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            continue; // CRLF keep-alive (RFC 5626)
        }
        handle_datagram(&shared, data, Endpoint::udp(src)).await;
    }
}

/// One SIP message (a UDP datagram or a framed TCP message) from `src`.
pub(crate) async fn handle_datagram(shared: &Arc<Shared>, data: &[u8], src: Endpoint) {
    Metrics::inc(&shared.metrics.sip_messages);
    // Every datagram from a source that is not a trunk spends its budget
    // before anything is parsed: a flood costs a map lookup per packet, and
    // a spoofed one cannot make us reflect 400s at its victim.
    if !trusted_source(shared, src)
        && !shared
            .limiter
            .allow(src.addr.ip(), std::time::Instant::now())
    {
        Metrics::inc(&shared.metrics.sip_dropped_rate_limited);
        return;
    }
    let msg = match message::parse(data) {
        Ok(m) => m,
        Err(e) => {
            Metrics::inc(&shared.metrics.sip_malformed);
            tracing::debug!(%src, error = %e, "malformed SIP");
            if let Some(reply) = message::error_response_for(data, &e) {
                shared.send(src, &reply).await;
            }
            return;
        }
    };
    let Some(call_id) = message::call_id(&msg).map(str::to_owned) else {
        return;
    };
    if let SipMessage::Request(req) = &msg {
        // Scanners cost one parse and nothing else: no answer, no state.
        if is_scanner(req) {
            Metrics::inc(&shared.metrics.sip_dropped_scanner);
            return;
        }
    }
    if let Some(entry) = shared.by_sip_call_id.get(&call_id).map(|e| e.clone()) {
        let (leg, call) = entry;
        // A full mailbox drops the datagram; the peer retransmits.
        let _ = call
            .mailbox
            .try_send(super::shared::ActorInput::Sip(leg, Box::new(msg), src));
        return;
    }
    let req = match msg {
        SipMessage::Request(req) => req,
        SipMessage::Response(ref r) => {
            // A keep-alive or carrier REGISTER waiting for this (final)
            // response?
            if r.status_code.code() < 200 {
                return;
            }
            if let Some((_, waiter)) = shared.pending.remove(&call_id) {
                let _ = waiter.send(msg);
            }
            return;
        }
    };
    if req.method != Method::Ack && !supported_scheme(&req) {
        // RFC 3261 §8.2.2.1 (RFC 4475 unkscm, novelsc).
        let resp = message::response(&req, 416, Some(&ids::new_tag()), &[], None);
        return reply(shared, &req, src, resp).await;
    }
    if matches!(req.method, Method::Options | Method::Register) {
        if let Some(resp) = unsupported_extensions(&req) {
            return reply(shared, &req, src, resp).await;
        }
    }
    match req.method {
        Method::Invite if message::to_tag(&req).is_none() => admit(shared, req, src).await,
        Method::Ack => {}
        Method::Register => super::register::on_register(shared, req, src).await,
        Method::Options => {
            let resp = message::response(
                &req,
                200,
                Some(&ids::new_tag()),
                &[
                    ("Allow", ALLOW.to_string()),
                    ("Accept", "application/sdp".into()),
                ],
                None,
            );
            reply(shared, &req, src, resp).await;
        }
        Method::Invite
        | Method::Bye
        | Method::Cancel
        | Method::Update
        | Method::Info
        | Method::PRack => reject(shared, &req, src, 481, None).await,
        _ => {
            let resp = message::response(
                &req,
                405,
                Some(&ids::new_tag()),
                &[("Allow", ALLOW.to_string())],
                None,
            );
            reply(shared, &req, src, resp).await;
        }
    }
}

async fn reply(shared: &Shared, req: &Request, src: Endpoint, resp: rsipstack::sip::Response) {
    shared
        .send(response_endpoint(req, src), &resp.to_bytes())
        .await;
}

/// Refuse an out-of-dialog request (counted in the metrics).
async fn reject(shared: &Shared, req: &Request, src: Endpoint, status: u16, cause: Option<&str>) {
    shared.metrics.rejected(status);
    shared.refuse(req, src, status, cause).await;
}

/// Request-URI schemes Maskline serves: `sip`, `sips`, `tel`.
fn supported_scheme(req: &Request) -> bool {
    use rsipstack::sip::uri::Scheme;
    match &req.uri.scheme {
        Some(Scheme::Sip | Scheme::Sips) => true,
        Some(Scheme::Other(s)) => s.eq_ignore_ascii_case("tel"),
        None => false,
    }
}

/// We support no option tags but `timer` (no 100rel, …): a request that
/// requires another is refused cleanly with 420 and `Unsupported` rather
/// than half-handled (RFC 3261 §8.2.2.3).
fn unsupported_extensions(req: &Request) -> Option<rsipstack::sip::Response> {
    let required: Vec<String> = ["Require", "Proxy-Require"]
        .iter()
        .filter_map(|h| req.header_value(h))
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("timer"))
        .collect();
    (!required.is_empty()).then(|| {
        message::response(
            req,
            420,
            Some(&ids::new_tag()),
            &[("Unsupported", required.join(", "))],
            None,
        )
    })
}

/// Well-known SIP scanners (SIPVicious & co.) identify themselves.
fn is_scanner(req: &Request) -> bool {
    const SCANNERS: [&str; 6] = [
        "friendly-scanner",
        "sipvicious",
        "sipcli",
        "sip-scan",
        "vaxsipuseragent",
        "sipsak",
    ];
    req.header_value("User-Agent").is_some_and(|ua| {
        let ua = ua.to_ascii_lowercase();
        SCANNERS.iter().any(|s| ua.contains(s))
    })
}

fn trusted_source(shared: &Shared, src: Endpoint) -> bool {
    shared.trunks.is_trusted_source(src.addr.ip())
}

async fn admit(shared: &Arc<Shared>, req: Request, src: Endpoint) {
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let resp = message::response(
            &req,
            503,
            Some(&ids::new_tag()),
            &[("Retry-After", "60".into())],
            None,
        );
        return reply(shared, &req, src, resp).await;
    }
    // A trunk is trusted by its source address; anyone else must be a
    // softphone user and proves it with digest credentials (407 first).
    let authenticated = if trusted_source(shared, src) {
        None
    } else if shared.settings.users.is_empty() {
        tracing::info!(%src, "INVITE from untrusted source");
        return reject(shared, &req, src, 403, Some("CALL_REJECTED")).await;
    } else {
        match super::register::authenticate(shared, &req, src, "Proxy-Authorization", 407).await {
            super::register::Authn::User(user) => Some(user),
            super::register::Authn::Challenged => return,
        }
    };
    if req
        .header_value("Max-Forwards")
        .and_then(|v| v.trim().parse::<u32>().ok())
        == Some(0)
    {
        return reject(shared, &req, src, 483, None).await;
    }
    if let Some(t) = crate::b2bua::call::session_timer::SessionTimer::from_request(&req) {
        use crate::b2bua::call::session_timer::MIN_SE;
        if t.interval < MIN_SE {
            let resp = message::response(
                &req,
                422,
                Some(&ids::new_tag()),
                &[("Min-SE", MIN_SE.to_string())],
                None,
            );
            return reply(shared, &req, src, resp).await;
        }
    }
    if let Some(resp) = unsupported_extensions(&req) {
        return reply(shared, &req, src, resp).await;
    }
    let Some(dialled) = message::uri_user(&req.uri).and_then(|u| e164::normalize(&u)) else {
        return reject(shared, &req, src, 404, Some("UNALLOCATED_NUMBER")).await;
    };
    // The caller is the authenticated user, else what the trunk asserts. A
    // caller that is not a number cannot be a party (403 below).
    let caller = authenticated
        .or_else(|| message::caller_identity(&req))
        .unwrap_or_default();
    let (route, caller, callee) = match shared.routes.decide(&dialled, &caller) {
        RouteDecision::Dial {
            route,
            caller,
            callee,
        } => (route, caller, callee),
        RouteDecision::NoRoute => {
            return reject(shared, &req, src, 404, Some("UNALLOCATED_NUMBER")).await
        }
        RouteDecision::NotAParty => {
            return reject(shared, &req, src, 403, Some("CALL_REJECTED")).await
        }
    };
    if !message::has_sdp(&req, &req.body) {
        // Late offer (INVITE without SDP) is not supported yet.
        return reject(shared, &req, src, 488, Some("BEARERCAPABILITY_NOTAVAIL")).await;
    }
    // A registered callee is called at its contact (through the address its
    // REGISTER came from, which works behind NAT); anyone else via the trunk.
    let Some(Destination {
        dest: b_dest,
        request_uri: b_request_uri,
        credentials: b_credentials,
        alternatives: b_alternatives,
    }) = destination(shared, &callee)
    else {
        return reject(shared, &req, src, 480, Some("NO_ROUTE_DESTINATION")).await;
    };
    let (mailbox, inbox) = mpsc::channel(MAILBOX);
    let engine_id = ids::new_engine_call_id();
    let call = CallRef {
        engine_id: engine_id.clone(),
        mailbox,
    };
    // One live call per session; the entry API makes the check-and-claim
    // atomic against a concurrent INVITE. On a cluster, the session's call
    // may be on another node (the control plane marks it).
    if shared.routes.is_busy_elsewhere(&route.session_id) {
        return reject(shared, &req, src, 486, Some("USER_BUSY")).await;
    }
    // Decide inside the entry (a shard write lock), await only after it is
    // released: holding it across the 486 send could block every worker
    // thread that touches the shard (a deadlock seen at 2000 calls/s).
    let busy = match shared.by_session.entry(route.session_id.clone()) {
        dashmap::Entry::Occupied(_) => true,
        dashmap::Entry::Vacant(v) => {
            v.insert(call.clone());
            false
        }
    };
    if busy {
        return reject(shared, &req, src, 486, Some("USER_BUSY")).await;
    }
    let Some([a_ports, b_ports]) = shared.ports.allocate_n::<2>() else {
        shared.by_session.remove(&route.session_id);
        tracing::warn!(session_id = %route.session_id, "RTP port range exhausted");
        return reject(shared, &req, src, 503, Some("SWITCH_CONGESTION")).await;
    };
    let Some(call_id) = message::call_id(&req).map(str::to_owned) else {
        return;
    };
    shared
        .by_sip_call_id
        .insert(call_id.clone(), (Leg::A, call.clone()));
    shared.by_engine_id.insert(engine_id.clone(), call);
    Metrics::inc(&shared.metrics.call_attempts);
    tracing::info!(call_id = %engine_id, session_id = %route.session_id, "call admitted");
    tokio::spawn(call_actor::run(
        shared.clone(),
        inbox,
        NewCall {
            engine_id,
            session_id: route.session_id,
            control: route.control,
            record: route.record,
            masked: route.masked,
            caller,
            callee,
            start: Start::Inbound {
                invite: req,
                src,
                a_sip_call_id: call_id,
            },
            b_dest,
            b_request_uri,
            b_credentials,
            b_alternatives,
            a_ports,
            b_ports,
        },
    ));
}

/// Where a party's number is dialled.
pub(crate) struct Destination {
    /// Registered contact's source address, or the first trunk.
    pub dest: Endpoint,
    /// Request-URI of a registered contact.
    pub request_uri: Option<String>,
    /// The trunk's digest credentials.
    pub credentials: Option<crate::b2bua::TrunkCredentials>,
    /// Further trunks to fail over to.
    pub alternatives: Vec<crate::trunks::TrunkTarget>,
}

/// A registered number is called at its contact (through the address its
/// REGISTER came from, which works behind NAT); anyone else via the trunks
/// matching the number. `None`: no way to reach it.
pub(crate) fn destination(shared: &Shared, number: &str) -> Option<Destination> {
    let binding = shared.registrar.lock().ok().and_then(|r| {
        r.lookup(number, super::register::now_unix())
            .into_iter()
            .next()
    });
    if let Some(b) = binding {
        return Some(Destination {
            dest: b.source,
            request_uri: Some(b.contact),
            credentials: None,
            alternatives: Vec::new(),
        });
    }
    let mut candidates = shared.trunks.candidates(number).into_iter();
    let first = candidates.next()?;
    Some(Destination {
        dest: first.endpoint,
        request_uri: None,
        credentials: first.credentials,
        alternatives: candidates.collect(),
    })
}
