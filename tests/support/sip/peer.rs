//! The raw UDP SIP peer: sends requests built from text templates, waits on
//! the messages it expects (bounded in time), answers as a UAS, and keeps
//! every datagram it received for byte-level assertions.
//!
//! It behaves as a minimal transaction layer so that waits never trip over
//! retransmissions: a retransmitted request it already answered gets the
//! same answer again, a retransmitted 2xx to an INVITE it already ACKed gets
//! the ACK again, and neither is handed to the test a second time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use super::dialog::Dialog;
use super::message::{header_tag, SipMessage};
use super::sdp::sdp_body;
use crate::error::{E2eError, Result};

/// Default bound of every wait.
pub const WAIT: Duration = Duration::from_secs(5);

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A token unique within the test process (tags, branches, Call-IDs).
fn unique(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}{}x{n}x{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Key of a request for retransmission detection.
fn request_key(m: &SipMessage) -> Option<String> {
    Some(format!(
        "{}|{}|{}|{}",
        m.method()?,
        m.call_id()?,
        m.header("cseq")?,
        m.top_branch().unwrap_or_default()
    ))
}

/// What the peer puts in an INVITE it sends.
#[derive(Debug, Clone)]
pub struct InviteSpec {
    /// The dialled number: the Request-URI and To user (e.g. the masked
    /// number, with or without `+`).
    pub dialled: String,
    /// The caller's real number. Deliberately put everywhere a B2BUA could
    /// leak it: From (user and display name), Contact, P-Asserted-Identity,
    /// Remote-Party-ID, Diversion, Call-Info, and the SDP `o=`/`s=` lines.
    pub caller: String,
    /// The caller's RTP socket, advertised in the SDP offer.
    pub rtp: SocketAddr,
}

/// An INVITE the peer sent and has not seen the final response of yet.
#[derive(Debug, Clone)]
pub struct OutgoingInvite {
    /// Its Call-ID.
    pub call_id: String,
    /// Its From header value (with our tag).
    pub from: String,
    /// Our From tag.
    pub tag: String,
    /// Its top Via branch.
    pub branch: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// Its Request-URI.
    pub uri: String,
    /// Our Contact URI.
    pub contact: String,
    /// The raw text sent.
    pub text: String,
}

/// A SIP endpoint on a raw UDP socket.
#[derive(Debug)]
pub struct SipPeer {
    socket: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    backlog: VecDeque<SipMessage>,
    received: Vec<Vec<u8>>,
    /// Requests handed to the test, with the response we sent (if any).
    seen_requests: HashMap<String, Option<(Vec<u8>, SocketAddr)>>,
    /// ACKs sent for 2xx, by Call-ID and CSeq, to answer 2xx retransmits.
    acks: HashMap<(String, u32), (Vec<u8>, SocketAddr)>,
    /// 2xx responses to INVITE already handed to the test.
    seen_2xx: HashSet<(String, u32)>,
}

impl SipPeer {
    /// Binds `local`; requests outside a dialog go to `server` (Maskline).
    pub async fn bind(local: SocketAddr, server: SocketAddr) -> Result<SipPeer> {
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| E2eError::io(format!("binding SIP peer on {local}"), e))?;
        let local = socket
            .local_addr()
            .map_err(|e| E2eError::io("SIP peer local address", e))?;
        Ok(SipPeer {
            socket,
            local,
            server,
            backlog: VecDeque::new(),
            received: Vec::new(),
            seen_requests: HashMap::new(),
            acks: HashMap::new(),
            seen_2xx: HashSet::new(),
        })
    }

    /// The peer's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every datagram received so far, exactly as received.
    pub fn received(&self) -> &[Vec<u8>] {
        &self.received
    }

    /// Every datagram received so far, concatenated.
    pub fn received_bytes(&self) -> Vec<u8> {
        self.received.concat()
    }

    /// Sends raw bytes to `dest`.
    pub async fn send_to(&self, data: &[u8], dest: SocketAddr) -> Result<()> {
        self.socket
            .send_to(data, dest)
            .await
            .map(|_| ())
            .map_err(|e| E2eError::io(format!("sending to {dest}"), e))
    }

    /// Sends raw bytes to Maskline.
    pub async fn send_raw(&self, data: &[u8]) -> Result<()> {
        self.send_to(data, self.server).await
    }

    /// Receives one datagram before `deadline`; `None` when it passes.
    /// Retransmissions are answered here and not returned.
    async fn next_message(&mut self, deadline: Instant) -> Result<Option<SipMessage>> {
        let mut buf = vec![0u8; 65_535];
        loop {
            let got = match timeout_at(deadline, self.socket.recv_from(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(r) => r.map_err(|e| E2eError::io("receiving SIP", e))?,
            };
            let (len, source) = got;
            let data = buf.get(..len).unwrap_or_default().to_vec();
            self.received.push(data.clone());
            // Keep-alives and anything unparsable are recorded, not returned.
            let Ok(msg) = SipMessage::parse(&data, source) else {
                continue;
            };
            if self.absorb_retransmission(&msg).await? {
                continue;
            }
            return Ok(Some(msg));
        }
    }

    /// Handles a retransmitted request or 2xx; true when `msg` was one.
    async fn absorb_retransmission(&mut self, msg: &SipMessage) -> Result<bool> {
        if msg.method().is_some() {
            let Some(key) = request_key(msg) else {
                return Ok(false);
            };
            return match self.seen_requests.get(&key) {
                None => Ok(false),
                Some(None) => Ok(true),
                Some(Some((bytes, dest))) => {
                    let (bytes, dest) = (bytes.clone(), *dest);
                    self.send_to(&bytes, dest).await?;
                    Ok(true)
                }
            };
        }
        let (Some(status), Some(call_id), Some((cseq, "INVITE"))) =
            (msg.status(), msg.call_id(), msg.cseq())
        else {
            return Ok(false);
        };
        if !(200..300).contains(&status) {
            return Ok(false);
        }
        let key = (call_id.to_string(), cseq);
        if let Some((ack, dest)) = self.acks.get(&key) {
            let (ack, dest) = (ack.clone(), *dest);
            self.send_to(&ack, dest).await?;
            return Ok(true);
        }
        Ok(self.seen_2xx.contains(&key))
    }

    /// Waits up to `within` for a message satisfying `pred` (looking at
    /// earlier unclaimed messages first). `what` names it in the timeout.
    pub async fn recv_where(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&SipMessage) -> bool,
    ) -> Result<SipMessage> {
        if let Some(pos) = self.backlog.iter().position(&pred) {
            if let Some(msg) = self.backlog.remove(pos) {
                return Ok(self.claim(msg));
            }
        }
        let deadline = Instant::now() + within;
        while let Some(msg) = self.next_message(deadline).await? {
            if pred(&msg) {
                return Ok(self.claim(msg));
            }
            self.backlog.push_back(msg);
        }
        Err(E2eError::timeout(
            format!(
                "{what} at {}; unclaimed messages:\n{}",
                self.local,
                self.describe_backlog()
            ),
            within,
        ))
    }

    fn claim(&mut self, msg: SipMessage) -> SipMessage {
        if let Some(key) = request_key(&msg) {
            self.seen_requests.entry(key).or_insert(None);
        } else if let (Some(200..=299), Some(call_id), Some((cseq, "INVITE"))) =
            (msg.status(), msg.call_id(), msg.cseq())
        {
            self.seen_2xx.insert((call_id.to_string(), cseq));
        }
        msg
    }

    fn describe_backlog(&self) -> String {
        if self.backlog.is_empty() {
            return "(none)".into();
        }
        self.backlog
            .iter()
            .map(|m| m.raw_text())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// Waits for a request `method` (any dialog).
    pub async fn recv_request(&mut self, method: &str) -> Result<SipMessage> {
        self.recv_request_within(method, WAIT).await
    }

    /// Waits up to `within` for a request `method` (any dialog).
    pub async fn recv_request_within(
        &mut self,
        method: &str,
        within: Duration,
    ) -> Result<SipMessage> {
        self.recv_where(&format!("a {method} request"), within, |m| {
            m.method() == Some(method)
        })
        .await
    }

    /// Waits for a response to our `method` request in `call_id`; with
    /// `final_only`, provisional responses are skipped.
    pub async fn recv_response(
        &mut self,
        call_id: &str,
        method: &str,
        final_only: bool,
        within: Duration,
    ) -> Result<SipMessage> {
        let what = format!("a response to {method} (Call-ID {call_id})");
        self.recv_where(&what, within, |m| {
            m.status().is_some_and(|s| !final_only || s >= 200)
                && m.call_id() == Some(call_id)
                && m.cseq().is_some_and(|(_, cm)| cm == method)
        })
        .await
    }

    /// Sends a response to `req` (to the address it came from, which is
    /// where Maskline's Via/rport points on loopback). `to_tag` is added to
    /// To when it has none; `extra` are whole header lines; `sdp` a body.
    pub async fn respond(
        &mut self,
        req: &SipMessage,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[String],
        sdp: Option<&str>,
    ) -> Result<()> {
        let mut text = format!("SIP/2.0 {status} {reason}\r\n");
        for via in req.headers_named("via") {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        for rr in req.headers_named("record-route") {
            text.push_str(&format!("Record-Route: {rr}\r\n"));
        }
        text.push_str(&format!("From: {}\r\n", req.required("from")?));
        let to = req.required("to")?;
        match (header_tag(to), to_tag) {
            (None, Some(tag)) => text.push_str(&format!("To: {to};tag={tag}\r\n")),
            _ => text.push_str(&format!("To: {to}\r\n")),
        }
        text.push_str(&format!("Call-ID: {}\r\n", req.required("call-id")?));
        text.push_str(&format!("CSeq: {}\r\n", req.required("cseq")?));
        for line in extra {
            text.push_str(line);
            text.push_str("\r\n");
        }
        match sdp {
            Some(body) => text.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        let bytes = text.into_bytes();
        self.send_to(&bytes, req.source).await?;
        if let Some(key) = request_key(req) {
            self.seen_requests.insert(key, Some((bytes, req.source)));
        }
        Ok(())
    }

    /// Sends an INVITE to Maskline per `spec`.
    pub async fn invite(&mut self, spec: &InviteSpec) -> Result<OutgoingInvite> {
        let server = self.server;
        let local = self.local;
        let ip = local.ip();
        let caller = &spec.caller;
        let tag = unique("a");
        let branch = format!("z9hG4bK{}", unique("b"));
        let call_id = format!("{}@{ip}", unique("c"));
        let uri = format!("sip:{}@{server}", spec.dialled);
        let from = format!("\"Caller {caller}\" <sip:{caller}@{local}>;tag={tag}");
        let contact = format!("sip:{caller}@{local}");
        let sdp = sdp_body(caller, spec.rtp);
        let text = format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: <sip:{dialled}@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <{contact}>\r\n\
             P-Asserted-Identity: \"Caller\" <sip:{caller}@{ip}>\r\n\
             Remote-Party-ID: \"{caller}\" <sip:{caller}@{ip}>;party=calling;screen=yes;privacy=off\r\n\
             Diversion: <sip:{caller}@{ip}>;reason=unconditional;counter=1\r\n\
             Call-Info: <http://{ip}/photos/{caller}.jpg>;purpose=icon\r\n\
             User-Agent: maskline-e2e raw peer\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            dialled = spec.dialled,
            len = sdp.len(),
        );
        self.send_raw(text.as_bytes()).await?;
        Ok(OutgoingInvite {
            call_id,
            from,
            tag,
            branch,
            cseq: 1,
            uri,
            contact,
            text,
        })
    }

    /// Waits for the final response to `inv`, skipping provisional ones.
    /// A non-2xx is ACKed here (same branch, RFC 3261 §17.1.1.3).
    pub async fn final_response(
        &mut self,
        inv: &OutgoingInvite,
        within: Duration,
    ) -> Result<SipMessage> {
        let resp = self
            .recv_response(&inv.call_id, "INVITE", true, within)
            .await?;
        if resp.status().is_some_and(|s| s >= 300) {
            let to = resp.required("to")?;
            let ack = format!(
                "ACK {uri} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: {from}\r\n\
                 To: {to}\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: {cseq} ACK\r\n\
                 Content-Length: 0\r\n\r\n",
                uri = inv.uri,
                local = self.local,
                branch = inv.branch,
                from = inv.from,
                call_id = inv.call_id,
                cseq = inv.cseq,
            );
            self.send_raw(ack.as_bytes()).await?;
        }
        Ok(resp)
    }

    /// Waits for `inv` to be answered with 200, ACKs it and returns the 200
    /// and the dialog. Any other final response is an error.
    pub async fn answered(
        &mut self,
        inv: &OutgoingInvite,
        within: Duration,
    ) -> Result<(SipMessage, Dialog)> {
        let resp = self.final_response(inv, within).await?;
        if resp.status() != Some(200) {
            return Err(E2eError::Unexpected(format!(
                "INVITE {} got a final response other than 200:\n{}",
                inv.uri,
                resp.raw_text()
            )));
        }
        let dialog = Dialog::from_uac(&inv.from, &inv.call_id, inv.cseq, &inv.contact, &resp)?;
        let ack = dialog.request(
            "ACK",
            inv.cseq,
            self.local,
            &format!("z9hG4bK{}", unique("k")),
        );
        let dest = dialog.next_hop(self.server);
        self.send_to(ack.as_bytes(), dest).await?;
        self.acks
            .insert((inv.call_id.clone(), inv.cseq), (ack.into_bytes(), dest));
        Ok((resp, dialog))
    }

    /// Answers a received INVITE as the callee: 180, then 200 with an SDP
    /// answer for `rtp` (with `owner` in `o=`/`s=`), then waits for the ACK.
    pub async fn answer(
        &mut self,
        invite: &SipMessage,
        owner: &str,
        rtp: SocketAddr,
    ) -> Result<Dialog> {
        let tag = unique("t");
        let contact = format!("sip:{owner}@{}", self.local);
        let dialog = Dialog::from_uas(invite, &tag, &contact)?;
        let contact_line = format!("Contact: <{contact}>");
        self.respond(
            invite,
            180,
            "Ringing",
            Some(&tag),
            std::slice::from_ref(&contact_line),
            None,
        )
        .await?;
        let sdp = sdp_body(owner, rtp);
        self.respond(invite, 200, "OK", Some(&tag), &[contact_line], Some(&sdp))
            .await?;
        let call_id = dialog.call_id.clone();
        self.recv_where(&format!("the ACK for {call_id}"), WAIT, |m| {
            m.method() == Some("ACK") && m.call_id() == Some(call_id.as_str())
        })
        .await?;
        Ok(dialog)
    }

    /// Sends BYE in `dialog` and waits for its final response (returned).
    pub async fn bye(&mut self, dialog: &mut Dialog) -> Result<SipMessage> {
        dialog.local_cseq += 1;
        let bye = dialog.request(
            "BYE",
            dialog.local_cseq,
            self.local,
            &format!("z9hG4bK{}", unique("y")),
        );
        self.send_to(bye.as_bytes(), dialog.next_hop(self.server))
            .await?;
        self.recv_response(&dialog.call_id, "BYE", true, WAIT).await
    }

    /// Waits up to `within` for a BYE in `dialog`, answers 200 and returns it.
    pub async fn expect_bye(&mut self, dialog: &Dialog, within: Duration) -> Result<SipMessage> {
        let call_id = dialog.call_id.clone();
        let bye = self
            .recv_where(&format!("a BYE in {call_id}"), within, |m| {
                m.method() == Some("BYE") && m.call_id() == Some(call_id.as_str())
            })
            .await?;
        self.respond(&bye, 200, "OK", None, &[], None).await?;
        Ok(bye)
    }

    /// Sends OPTIONS outside any dialog and returns the final response.
    pub async fn options(&mut self, within: Duration) -> Result<SipMessage> {
        let call_id = format!("{}@{}", unique("o"), self.local.ip());
        let text = format!(
            "OPTIONS sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@{local}>;tag={tag}\r\n\
             To: <sip:{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Accept: application/sdp\r\n\
             Content-Length: 0\r\n\r\n",
            server = self.server,
            local = self.local,
            branch = unique("p"),
            tag = unique("t"),
        );
        self.send_raw(text.as_bytes()).await?;
        self.recv_response(&call_id, "OPTIONS", true, within).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two peers talk to each other: one's INVITE is answered by the other,
    /// ACKed, and a BYE goes back. Proves the peer against itself, with no
    /// Maskline involved.
    #[tokio::test]
    async fn two_peers_complete_a_call() -> Result<()> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut callee = SipPeer::bind(any, any).await?;
        let mut caller = SipPeer::bind(any, callee.local_addr()).await?;
        callee.server = caller.local_addr();
        let rtp = SocketAddr::from(([127, 0, 0, 1], 40000));
        let inv = caller
            .invite(&InviteSpec {
                dialled: "+15550000001".into(),
                caller: "+14155550101".into(),
                rtp,
            })
            .await?;
        let got = callee.recv_request("INVITE").await?;
        assert_eq!(got.call_id(), Some(inv.call_id.as_str()));
        assert!(got.body_text().contains("o=+14155550101 "));
        let (uas, uac) = tokio::join!(
            callee.answer(&got, "+14155550202", rtp),
            caller.answered(&inv, WAIT)
        );
        let uas = uas?;
        let (ok, mut uac) = uac?;
        assert_eq!(ok.status(), Some(200));
        assert_eq!(uac.remote_tag, uas.local_tag);
        assert_eq!(uas.remote_tag, inv.tag);
        // A retransmitted INVITE is answered again, not handed to the test.
        caller.send_raw(inv.text.as_bytes()).await?;
        let (bye_resp, bye) = tokio::join!(caller.bye(&mut uac), callee.expect_bye(&uas, WAIT));
        assert_eq!(bye_resp?.status(), Some(200));
        assert_eq!(bye?.cseq(), Some((2, "BYE")));
        let invites = callee
            .received()
            .iter()
            .filter(|d| d.starts_with(b"INVITE "))
            .count();
        assert_eq!(invites, 2, "the retransmission reached the callee");
        Ok(())
    }
}
