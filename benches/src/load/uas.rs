//! The B side: a minimal raw-UDP UAS listening at the trunk address. It
//! answers every outbound INVITE of the engine with 200 OK + SDP (B's media
//! socket for that call), retransmits the 200 until ACKed (RFC 3261 §13.3.1.4),
//! answers BYE with 200 and remembers where the engine wants B's media.
//!
//! The call is identified by the dialled number (Request-URI user = the
//! call's party B).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use super::sip_text::{ok_response, sdp_audio_addr, sdp_offer, SipText};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const MAX_RETRANSMITS: u8 = 7;
const TICK: Duration = Duration::from_millis(100);

/// Counters of the UAS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UasCounts {
    /// Outbound INVITEs answered 200.
    pub answered: usize,
    /// 200s acknowledged by the engine.
    pub acked: usize,
    /// BYEs received (and answered 200).
    pub byes: usize,
    /// INVITEs for a number the run does not know.
    pub unknown: usize,
}

struct Dialog {
    ok: Vec<u8>,
    dest: SocketAddr,
    acked: bool,
    retransmits: u8,
    interval: Duration,
    next: Instant,
}

struct State {
    dialogs: HashMap<String, Dialog>,
    relay_targets: Vec<Option<SocketAddr>>,
    counts: UasCounts,
}

/// The UAS.
pub struct Uas {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    /// Party B number → call index.
    callees: HashMap<String, usize>,
    /// B's media address per call index.
    media: Vec<SocketAddr>,
    state: Mutex<State>,
    counts: watch::Sender<UasCounts>,
}

impl Uas {
    /// A UAS on `socket` (bound at `local`, the trunk address) for calls
    /// whose party B numbers are `callees` (index order) and whose B media
    /// sockets are at `media`.
    pub fn new(
        socket: Arc<UdpSocket>,
        local: SocketAddr,
        callees: &[String],
        media: Vec<SocketAddr>,
    ) -> Arc<Uas> {
        let callees = callees
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let state = State {
            dialogs: HashMap::new(),
            relay_targets: vec![None; media.len()],
            counts: UasCounts::default(),
        };
        Arc::new(Uas {
            socket,
            local,
            callees,
            media,
            state: Mutex::new(state),
            counts: watch::Sender::new(UasCounts::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where the engine wants call `index`'s B media (its B-side relay
    /// port), once the call's INVITE arrived.
    pub fn relay_target(&self, index: usize) -> Option<SocketAddr> {
        self.state().relay_targets.get(index).copied().flatten()
    }

    /// Current counters.
    pub fn counts(&self) -> UasCounts {
        self.state().counts
    }

    /// Counters as they change.
    pub fn watch_counts(&self) -> watch::Receiver<UasCounts> {
        self.counts.subscribe()
    }

    /// Receive loop with 200 OK retransmission; runs until its task is
    /// aborted or the runtime stops.
    pub async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; 65536];
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((len, src)) = r else { continue };
                    let Some(msg) = buf.get(..len).and_then(SipText::parse) else { continue };
                    if let Some(reply) = self.on_message(&msg, src) {
                        let _ = self.socket.send_to(&reply, src).await;
                    }
                }
                _ = tick.tick() => self.retransmit().await,
            }
        }
    }

    /// What to send back to `src` for `msg`, if anything.
    fn on_message(&self, msg: &SipText<'_>, src: SocketAddr) -> Option<Vec<u8>> {
        let reply = self.handle(msg, src);
        let counts = self.state().counts;
        self.counts
            .send_if_modified(|c| std::mem::replace(c, counts) != counts);
        reply
    }

    fn handle(&self, msg: &SipText<'_>, src: SocketAddr) -> Option<Vec<u8>> {
        let call_id = msg.call_id()?;
        let method = msg.method()?; // responses are not expected here
        let mut state = self.state();
        match method {
            "INVITE" if msg.tag("To").is_none() => {
                if let Some(d) = state.dialogs.get(call_id) {
                    return Some(d.ok.clone()); // retransmitted INVITE
                }
                let index = msg
                    .request_user()
                    .and_then(|u| self.callees.get(u).copied());
                let (Some(index), Some(target)) = (index, sdp_audio_addr(msg.body)) else {
                    state.counts.unknown += 1;
                    return None;
                };
                let media = *self.media.get(index)?;
                let user = msg.request_user().unwrap_or_default();
                let contact = format!("Contact: <sip:{user}@{}>\r\n", self.local);
                let sdp = sdp_offer(1_000_000 + index as u64, media);
                let ok = ok_response(msg, Some(&format!("b{index}")), &contact, Some(&sdp));
                if let Some(slot) = state.relay_targets.get_mut(index) {
                    *slot = Some(target);
                }
                state.counts.answered += 1;
                let dialog = Dialog {
                    ok: ok.clone(),
                    dest: src,
                    acked: false,
                    retransmits: 0,
                    interval: T1,
                    next: Instant::now() + T1,
                };
                state.dialogs.insert(call_id.to_string(), dialog);
                Some(ok)
            }
            "ACK" => {
                if let Some(d) = state.dialogs.get_mut(call_id) {
                    if !d.acked {
                        d.acked = true;
                        state.counts.acked += 1;
                    }
                }
                None
            }
            "BYE" => {
                if state.dialogs.remove(call_id).is_some() {
                    state.counts.byes += 1;
                }
                Some(ok_response(msg, None, "", None))
            }
            _ => Some(ok_response(msg, None, "", None)),
        }
    }

    async fn retransmit(&self) {
        let now = Instant::now();
        let due: Vec<(Vec<u8>, SocketAddr)> = {
            let mut state = self.state();
            state
                .dialogs
                .values_mut()
                .filter(|d| !d.acked && d.retransmits < MAX_RETRANSMITS && d.next <= now)
                .map(|d| {
                    d.retransmits += 1;
                    d.interval = (d.interval * 2).min(T2);
                    d.next = now + d.interval;
                    (d.ok.clone(), d.dest)
                })
                .collect()
        };
        for (bytes, dest) in due {
            let _ = self.socket.send_to(&bytes, dest).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+14160000001@127.0.0.1:25080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bKe1;rport\r\n\
From: <sip:+15550000001@127.0.0.1>;tag=m1\r\nTo: <sip:+14160000001@127.0.0.1:25080>\r\n\
Call-ID: b-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 50\r\n\r\n\
v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40006 RTP/AVP 0\r\n";

    #[tokio::test]
    async fn answers_invite_once_and_counts_ack_and_bye() {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let local = socket.local_addr().unwrap();
        let media: Vec<SocketAddr> = vec![
            "127.0.0.1:50000".parse().unwrap(),
            "127.0.0.1:50002".parse().unwrap(),
        ];
        let uas = Uas::new(
            socket,
            local,
            &["+14160000000".into(), "+14160000001".into()],
            media,
        );
        let src: SocketAddr = "127.0.0.1:25060".parse().unwrap();
        let invite = SipText::parse(INVITE.as_bytes()).unwrap();
        let ok = uas.on_message(&invite, src).unwrap();
        let ok_text = SipText::parse(&ok).unwrap();
        assert_eq!(ok_text.status(), Some(200));
        assert_eq!(ok_text.tag("To"), Some("b1"));
        assert_eq!(
            sdp_audio_addr(ok_text.body),
            Some("127.0.0.1:50002".parse().unwrap())
        );
        assert_eq!(
            uas.relay_target(1),
            Some("127.0.0.1:40006".parse().unwrap())
        );
        assert_eq!(uas.relay_target(0), None);
        // A retransmitted INVITE gets the same 200, not a second dialog.
        assert_eq!(uas.on_message(&invite, src), Some(ok));
        let ack = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK");
        assert_eq!(
            uas.on_message(&SipText::parse(ack.as_bytes()).unwrap(), src),
            None
        );
        let bye = INVITE
            .replace("INVITE sip", "BYE sip")
            .replace("1 INVITE", "2 BYE");
        let bye_ok = uas
            .on_message(&SipText::parse(bye.as_bytes()).unwrap(), src)
            .unwrap();
        assert_eq!(SipText::parse(&bye_ok).unwrap().status(), Some(200));
        assert_eq!(
            uas.counts(),
            UasCounts {
                answered: 1,
                acked: 1,
                byes: 1,
                unknown: 0
            }
        );
    }
}
