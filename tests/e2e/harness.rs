//! Self-checks of the harness without Maskline: the raw peer and the SIPp
//! scenarios talk to each other directly, so a failing e2e test points at
//! Maskline, not at the tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use maskline_e2e::{
    bounded, E2eError, InviteSpec, PortBlock, Result, SipPeer, Sipp, SippOptions, PARTY_A, PARTY_B,
    WAIT,
};

use crate::{LOOPBACK, TEST_LIMIT};

/// A scratch dir for SIPp traces, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "maskline-e2e-{}-harness-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| E2eError::io(format!("creating {}", dir.display()), e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

/// The raw peer calls the SIPp callee scenario directly and hangs up.
#[tokio::test]
async fn raw_peer_calls_the_sipp_callee_scenario() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ports = PortBlock::allocate()?;
        let scratch = Scratch::new("raw-to-sipp")?;
        let mut uas = Sipp::spawn(
            &SippOptions::uas("uas_answer.xml", LOOPBACK, ports.sipp(0), ports.trunk()),
            &scratch.0,
            "uas",
        )?;
        uas.wait_listening(Duration::from_secs(5)).await?;
        let mut peer = SipPeer::bind(lo(ports.peer(0)), lo(ports.trunk())).await?;
        let inv = peer
            .invite(&InviteSpec {
                dialled: PARTY_B.into(),
                caller: PARTY_A.into(),
                rtp: lo(ports.rtp(0)),
            })
            .await?;
        let (_ok, mut dialog) = peer.answered(&inv, WAIT).await?;
        let bye = peer.bye(&mut dialog).await?;
        assert_eq!(bye.status(), Some(200), "{}", bye.raw_text());
        let out = uas.finish(Duration::from_secs(10)).await?;
        assert!(out.succeeded(), "{}", out.describe());
        assert!(
            out.received().iter().any(|m| m.contains(PARTY_A)),
            "the log shows what the peer sent:\n{}",
            out.describe()
        );
        Ok(())
    })
    .await
}

/// The SIPp caller scenario calls the raw peer directly, which answers and
/// receives SIPp's BYE; every number-bearing header arrives as written.
#[tokio::test]
async fn sipp_caller_scenario_calls_the_raw_peer() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ports = PortBlock::allocate()?;
        let scratch = Scratch::new("sipp-to-raw")?;
        let mut peer = SipPeer::bind(lo(ports.trunk()), lo(ports.sipp(0).sip)).await?;
        let uac = Sipp::spawn(
            &SippOptions::uac(
                "uac_masked_call.xml",
                LOOPBACK,
                ports.sipp(0),
                lo(ports.trunk()),
                "+15550000001",
            )
            .key("caller", PARTY_A),
            &scratch.0,
            "uac",
        )?;
        let invite = peer.recv_request("INVITE").await?;
        for header in [
            "from",
            "contact",
            "p-asserted-identity",
            "remote-party-id",
            "diversion",
            "call-info",
        ] {
            assert!(
                invite.header(header).is_some_and(|v| v.contains(PARTY_A)),
                "{header} carries A's number:\n{}",
                invite.raw_text()
            );
        }
        assert!(invite.body_text().contains(&format!("o={PARTY_A} ")));
        assert!(invite.body_text().contains(&format!("s={PARTY_A}")));
        let dialog = peer.answer(&invite, PARTY_B, lo(ports.rtp(1))).await?;
        peer.expect_bye(&dialog, WAIT).await?;
        let out = uac.finish(Duration::from_secs(10)).await?;
        assert!(out.succeeded(), "{}", out.describe());
        Ok(())
    })
    .await
}

/// The reject scenarios pass on the status they expect and fail on another.
#[tokio::test]
async fn reject_scenarios_check_the_status() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ports = PortBlock::allocate()?;
        let scratch = Scratch::new("rejects")?;
        let mut peer = SipPeer::bind(lo(ports.trunk()), lo(ports.sipp(0).sip)).await?;
        for (scenario, answer, should_pass) in [
            ("uac_expect_404.xml", 404, true),
            ("uac_expect_486.xml", 403, false),
        ] {
            let uac = Sipp::spawn(
                &SippOptions {
                    timeout_secs: 3,
                    ..SippOptions::uac(
                        scenario,
                        LOOPBACK,
                        ports.sipp(0),
                        lo(ports.trunk()),
                        "+15550000001",
                    )
                    .key("caller", PARTY_A)
                },
                &scratch.0,
                &format!("uac-{answer}"),
            )?;
            let invite = peer.recv_request("INVITE").await?;
            peer.respond(&invite, answer, "Refused", Some("x1"), &[], None)
                .await?;
            let out = uac.finish(Duration::from_secs(10)).await?;
            assert_eq!(
                out.succeeded(),
                should_pass,
                "{scenario} on {answer}:\n{}",
                out.describe()
            );
        }
        Ok(())
    })
    .await
}
