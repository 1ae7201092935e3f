//! Out-of-dialog requests Maskline originates on its own: OPTIONS
//! keep-alive to trunks (marks them up/down), the optional REGISTER at a
//! carrier, and OPTIONS pings that keep softphones' UDP NAT bindings open.
//!
//! Each request waits for its response through [`Shared::pending`]
//! (Call-ID → waiter); the dispatcher hands matching responses over.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::prelude::*;
use rsipstack::sip::{Method, Response, SipMessage, Uri};
use tokio::sync::oneshot;

use super::shared::Shared;
use crate::b2bua::outbound::uri_host;
use crate::sip::transport::{Endpoint, Transport};
use crate::sip::{auth, ids, message};

/// How long a ping or REGISTER waits for its response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A trunk is marked down after this many unanswered pings in a row.
const DOWN_AFTER: u32 = 2;
/// Interval of the NAT keep-alive pings to registered UDP contacts.
const NAT_KEEPALIVE: Duration = Duration::from_secs(25);
/// Retry delay of a failed carrier registration.
const REGISTER_RETRY: Duration = Duration::from_secs(30);

/// Start the loops the config asks for.
pub(crate) fn spawn_all(shared: &Arc<Shared>) {
    for (index, trunk) in shared.trunks.configs().iter().enumerate() {
        if trunk.options_interval_secs > 0 {
            tokio::spawn(trunk_options_loop(
                shared.clone(),
                index,
                Duration::from_secs(trunk.options_interval_secs),
            ));
        }
        if trunk.register {
            tokio::spawn(trunk_register_loop(shared.clone(), index));
        }
    }
    tokio::spawn(nat_keepalive_loop(shared.clone()));
}

/// Send an out-of-dialog request and wait for its final response.
async fn transact(
    shared: &Shared,
    dest: Endpoint,
    req: rsipstack::sip::Request,
) -> Option<Response> {
    let call_id = message::call_id(&req)?.to_string();
    let (tx, rx) = oneshot::channel();
    shared.pending.insert(call_id.clone(), tx);
    shared.send(dest, &req.to_bytes()).await;
    let result = tokio::time::timeout(RESPONSE_TIMEOUT, rx).await;
    shared.pending.remove(&call_id);
    match result {
        Ok(Ok(SipMessage::Response(r))) => Some(r),
        _ => None,
    }
}

struct Out<'a> {
    method: Method,
    uri: &'a str,
    from_user: &'a str,
    to_user: &'a str,
    call_id: &'a str,
    from_tag: &'a str,
    cseq: u32,
    extra: Vec<(&'a str, String)>,
}

fn build(shared: &Shared, dest: Endpoint, o: Out<'_>) -> Option<rsipstack::sip::Request> {
    let local = &shared.settings.local;
    let host = uri_host(local.public_ip);
    let dest_host = dest.addr.to_string();
    let mut headers = vec![
        (
            "Via",
            format!(
                "SIP/2.0/{} {};branch={};rport",
                dest.transport.via_name(),
                local.sent_by,
                ids::new_branch()
            ),
        ),
        ("Max-Forwards", "70".to_string()),
        (
            "From",
            format!("<sip:{}@{}>;tag={}", o.from_user, host, o.from_tag),
        ),
        ("To", format!("<sip:{}@{}>", o.to_user, dest_host)),
        ("Call-ID", o.call_id.to_string()),
        ("CSeq", format!("{} {}", o.cseq, o.method)),
        (
            "Contact",
            format!("<sip:{}@{}>", o.from_user, local.sent_by),
        ),
        ("User-Agent", "Maskline".to_string()),
    ];
    headers.extend(o.extra);
    Some(message::request(
        o.method,
        Uri::try_from(o.uri).ok()?,
        &headers,
        None,
    ))
}

async fn trunk_options_loop(shared: Arc<Shared>, index: usize, every: Duration) {
    let Some(trunk) = shared.trunks.configs().get(index).cloned() else {
        return;
    };
    let dest = Endpoint {
        transport: trunk.transport.into(),
        addr: trunk.address,
    };
    let uri = format!("sip:{}", trunk.address);
    let mut misses = 0u32;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let call_id = ids::new_call_id(&uri_host(shared.settings.local.public_ip));
        let tag = ids::new_tag();
        let Some(req) = build(
            &shared,
            dest,
            Out {
                method: Method::Options,
                uri: &uri,
                from_user: "maskline",
                to_user: "ping",
                call_id: &call_id,
                from_tag: &tag,
                cseq: 1,
                extra: Vec::new(),
            },
        ) else {
            return;
        };
        let up = match transact(&shared, dest, req).await {
            // Any answer but "overloaded" means the trunk is there.
            Some(r) => r.status_code.code() != 503,
            None => false,
        };
        misses = if up { 0 } else { misses + 1 };
        let now_up = misses < DOWN_AFTER;
        if shared.trunks.set_up(index, now_up) {
            if now_up {
                tracing::info!(trunk = %trunk.name, "trunk up");
            } else {
                tracing::warn!(trunk = %trunk.name, "trunk down (no answer to OPTIONS)");
            }
        }
    }
}

async fn trunk_register_loop(shared: Arc<Shared>, index: usize) {
    let Some(trunk) = shared.trunks.configs().get(index).cloned() else {
        return;
    };
    let (Some(user), Some(password)) = (trunk.username.clone(), trunk.password.clone()) else {
        return;
    };
    let dest = Endpoint {
        transport: trunk.transport.into(),
        addr: trunk.address,
    };
    let uri = format!("sip:{}", trunk.address);
    let call_id = ids::new_call_id(&uri_host(shared.settings.local.public_ip));
    let tag = ids::new_tag();
    let mut cseq = 0u32;
    loop {
        let mut authorization: Option<(&str, String)> = None;
        let mut granted = None;
        for _attempt in 0..2 {
            cseq += 1;
            let mut extra = vec![("Expires", trunk.register_expires_secs.to_string())];
            if let Some((h, v)) = &authorization {
                extra.push((h, v.clone()));
            }
            let Some(req) = build(
                &shared,
                dest,
                Out {
                    method: Method::Register,
                    uri: &uri,
                    from_user: &user,
                    to_user: &user,
                    call_id: &call_id,
                    from_tag: &tag,
                    cseq,
                    extra,
                },
            ) else {
                return;
            };
            let Some(resp) = transact(&shared, dest, req).await else {
                break;
            };
            match resp.status_code.code() {
                200..=299 => {
                    let expires = resp
                        .header_value("Expires")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(trunk.register_expires_secs);
                    granted = Some(expires);
                    break;
                }
                code @ (401 | 407) if authorization.is_none() => {
                    let (challenge_h, answer_h) = if code == 401 {
                        ("WWW-Authenticate", "Authorization")
                    } else {
                        ("Proxy-Authenticate", "Proxy-Authorization")
                    };
                    let values: Vec<String> = resp
                        .headers
                        .iter()
                        .filter(|h| h.name().eq_ignore_ascii_case(challenge_h))
                        .map(|h| h.value().to_string())
                        .collect();
                    let Ok(ch) = auth::pick_challenge(values.iter().map(String::as_str)) else {
                        break;
                    };
                    authorization = Some((
                        answer_h,
                        auth::authorization(
                            &ch,
                            &user,
                            &password,
                            "REGISTER",
                            &uri,
                            &ids::new_tag(),
                            1,
                        ),
                    ));
                }
                code => {
                    tracing::warn!(trunk = %trunk.name, status = code, "carrier registration refused");
                    break;
                }
            }
        }
        let wait = match granted {
            Some(expires) => {
                tracing::info!(trunk = %trunk.name, expires, "registered at the carrier");
                Duration::from_secs((expires / 2).max(30))
            }
            None => REGISTER_RETRY,
        };
        tokio::time::sleep(wait).await;
    }
}

/// OPTIONS to every registered UDP contact so that NAT bindings between
/// softphones and Maskline stay open (TCP contacts keep their connection).
async fn nat_keepalive_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(NAT_KEEPALIVE);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = super::register::now_unix();
        let targets: Vec<(String, Endpoint)> = match shared.registrar.lock() {
            Ok(r) => r
                .all(now)
                .into_iter()
                .filter(|b| b.source.transport == Transport::Udp)
                .map(|b| (b.contact, b.source))
                .collect(),
            Err(_) => continue,
        };
        for (contact, source) in targets {
            let call_id = ids::new_call_id(&uri_host(shared.settings.local.public_ip));
            let tag = ids::new_tag();
            if let Some(req) = build(
                &shared,
                source,
                Out {
                    method: Method::Options,
                    uri: &contact,
                    from_user: "maskline",
                    to_user: "keepalive",
                    call_id: &call_id,
                    from_tag: &tag,
                    cseq: 1,
                    extra: Vec::new(),
                },
            ) {
                shared.send(source, &req.to_bytes()).await;
            }
        }
    }
}
