//! Call set-ups shared by several tests: a caller peer dials through
//! Maskline and the callee peer on the carrier trunk answers.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{E2eError, Result};
use crate::rtp::RtpEndpoint;
use crate::server::Maskline;
use crate::sip::{media_addr, Dialog, InviteSpec, OutgoingInvite, SipMessage, SipPeer, WAIT};

/// RTP packets sent each way by [`BridgedCall::exchange_rtp`].
const RTP_PACKETS: u16 = 20;

/// The local ends of one call: which ports of the instance's block the
/// caller's SIP peer and both RTP endpoints use. Tests that make several
/// calls at once use distinct slots (0–2).
#[derive(Debug, Clone, Copy)]
pub struct CallEnds {
    /// Caller's SIP port.
    pub caller_sip: u16,
    /// Caller's RTP port.
    pub caller_rtp: u16,
    /// Callee's RTP port.
    pub callee_rtp: u16,
}

impl CallEnds {
    /// The ends of slot `k` (0–2) of `ml`'s port block.
    pub fn slot(ml: &Maskline, k: u16) -> CallEnds {
        let p = ml.ports();
        CallEnds {
            caller_sip: p.peer(k),
            caller_rtp: p.rtp(2 * k),
            callee_rtp: p.rtp(2 * k + 1),
        }
    }
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Binds a caller peer on `port` and sends an INVITE dialling `dialled` as
/// `caller` (with an SDP offer for an RTP socket on `rtp_port`).
pub async fn dial(
    ml: &Maskline,
    port: u16,
    caller: &str,
    dialled: &str,
    rtp_port: u16,
) -> Result<(SipPeer, OutgoingInvite)> {
    let mut peer = SipPeer::bind(lo(port), ml.sip_addr()).await?;
    let inv = peer
        .invite(&InviteSpec {
            dialled: dialled.to_string(),
            caller: caller.to_string(),
            rtp: lo(rtp_port),
        })
        .await?;
    Ok((peer, inv))
}

/// A call bridged through Maskline between a caller peer and the callee
/// peer on the trunk, both answered and ACKed.
#[derive(Debug)]
pub struct BridgedCall {
    /// The calling party's SIP peer.
    pub caller: SipPeer,
    /// The called party's SIP peer (bound on the trunk address).
    pub callee: SipPeer,
    /// The caller's RTP endpoint.
    pub caller_rtp: RtpEndpoint,
    /// The callee's RTP endpoint.
    pub callee_rtp: RtpEndpoint,
    /// The caller's dialog with Maskline.
    pub caller_dialog: Dialog,
    /// The callee's dialog with Maskline.
    pub callee_dialog: Dialog,
    /// The INVITE the caller sent.
    pub invite: OutgoingInvite,
    /// The INVITE the callee received from Maskline.
    pub callee_invite: SipMessage,
    /// The 200 the caller received from Maskline.
    pub caller_answer: SipMessage,
}

/// `caller` dials `dialled` (the masked number, as written) from the ends
/// of `ends`; the callee peer on the trunk expects Maskline's INVITE,
/// answers it as `callee` (180, 200 with SDP) and both sides ACK.
pub async fn bridge_call(
    ml: &Maskline,
    ends: CallEnds,
    caller: &str,
    callee: &str,
    dialled: &str,
) -> Result<BridgedCall> {
    let mut callee_peer = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
    let caller_rtp = RtpEndpoint::bind(lo(ends.caller_rtp)).await?;
    let callee_rtp = RtpEndpoint::bind(lo(ends.callee_rtp)).await?;
    let (mut caller_peer, invite) =
        dial(ml, ends.caller_sip, caller, dialled, ends.caller_rtp).await?;
    let callee_invite = match callee_peer.recv_request("INVITE").await {
        Ok(m) => m,
        Err(e) => {
            // Say what the caller got instead, if anything.
            let answer = caller_peer
                .recv_response(&invite.call_id, "INVITE", true, Duration::from_millis(500))
                .await
                .map(|m| m.raw_text())
                .unwrap_or_else(|_| "(no final response either)".into());
            return Err(E2eError::Unexpected(format!(
                "the callee on the trunk got no INVITE ({e}); the caller got:\n{answer}"
            )));
        }
    };
    let (callee_dialog, answered) = tokio::join!(
        callee_peer.answer(&callee_invite, callee, callee_rtp.local_addr()),
        caller_peer.answered(&invite, WAIT)
    );
    let callee_dialog = callee_dialog?;
    let (caller_answer, caller_dialog) = answered?;
    Ok(BridgedCall {
        caller: caller_peer,
        callee: callee_peer,
        caller_rtp,
        callee_rtp,
        caller_dialog,
        callee_dialog,
        invite,
        callee_invite,
        caller_answer,
    })
}

impl BridgedCall {
    /// The relay addresses Maskline advertised: to the caller (in its 200)
    /// and to the callee (in its INVITE).
    pub fn relay_addrs(&self) -> Result<(SocketAddr, SocketAddr)> {
        let caller_side = media_addr(&self.caller_answer.body_text()).ok_or_else(|| {
            E2eError::Unexpected(format!(
                "no audio address in the 200 to the caller:\n{}",
                self.caller_answer.raw_text()
            ))
        })?;
        let callee_side = media_addr(&self.callee_invite.body_text()).ok_or_else(|| {
            E2eError::Unexpected(format!(
                "no audio address in the INVITE to the callee:\n{}",
                self.callee_invite.raw_text()
            ))
        })?;
        Ok((caller_side, callee_side))
    }

    /// Both parties send a 20 ms-paced stream at once to the relay address
    /// they were given; each must receive the other's payloads unchanged.
    pub async fn exchange_rtp(&self) -> Result<()> {
        let (to_caller_side, to_callee_side) = self.relay_addrs()?;
        let within = Duration::from_secs(5);
        let want_at_callee: Vec<Vec<u8>> = (0..RTP_PACKETS)
            .map(|i| crate::rtp::payload(1, i))
            .collect();
        let want_at_caller: Vec<Vec<u8>> = (0..RTP_PACKETS)
            .map(|i| crate::rtp::payload(2, i))
            .collect();
        let (a_sent, b_sent, at_callee, at_caller) = tokio::join!(
            self.caller_rtp.send_stream(to_caller_side, 1, RTP_PACKETS),
            self.callee_rtp.send_stream(to_callee_side, 2, RTP_PACKETS),
            self.callee_rtp.expect_payloads(&want_at_callee, within),
            self.caller_rtp.expect_payloads(&want_at_caller, within),
        );
        a_sent?;
        b_sent?;
        at_callee.map_err(|e| E2eError::Unexpected(format!("caller → callee: {e}")))?;
        at_caller.map_err(|e| E2eError::Unexpected(format!("callee → caller: {e}")))?;
        Ok(())
    }

    /// The caller hangs up: its BYE is answered 200 and the callee receives
    /// a BYE (answered 200 by the peer).
    pub async fn caller_hangs_up(&mut self) -> Result<()> {
        let (resp, bye) = tokio::join!(
            self.caller.bye(&mut self.caller_dialog),
            self.callee.expect_bye(&self.callee_dialog, WAIT)
        );
        let resp = resp?;
        if resp.status() != Some(200) {
            return Err(E2eError::Unexpected(format!(
                "the caller's BYE got:\n{}",
                resp.raw_text()
            )));
        }
        bye.map(|_| ())
    }

    /// The callee hangs up: its BYE is answered 200 and the caller receives
    /// a BYE.
    pub async fn callee_hangs_up(&mut self) -> Result<()> {
        let (resp, bye) = tokio::join!(
            self.callee.bye(&mut self.callee_dialog),
            self.caller.expect_bye(&self.caller_dialog, WAIT)
        );
        let resp = resp?;
        if resp.status() != Some(200) {
            return Err(E2eError::Unexpected(format!(
                "the callee's BYE got:\n{}",
                resp.raw_text()
            )));
        }
        bye.map(|_| ())
    }

    /// Both parties wait up to `within` for Maskline's BYE (answered 200).
    pub async fn both_get_bye(&mut self, within: Duration) -> Result<()> {
        let (a, b) = tokio::join!(
            self.caller.expect_bye(&self.caller_dialog, within),
            self.callee.expect_bye(&self.callee_dialog, within)
        );
        a.map_err(|e| E2eError::Unexpected(format!("caller: {e}")))?;
        b.map_err(|e| E2eError::Unexpected(format!("callee: {e}")))?;
        Ok(())
    }
}
