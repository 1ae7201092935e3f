//! Calls Maskline must refuse (issue item 5): 404 with no session for the
//! number, 403 for a caller who is not a party or a source outside the
//! trunk's `inbound_cidrs`, 486 while the session already has a live call.
//! The refused caller is SIPp expecting exactly that status.

use std::net::IpAddr;
use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, CallEnds, Maskline, Result, Sipp, SippOptions, StartOptions, PARTY_A,
    PARTY_B, POOL, STRANGER,
};

use crate::{LOOPBACK, TEST_LIMIT};

/// Runs `uac_expect_<status>.xml` from `ip` as `caller` dialling `dialled`
/// and asserts SIPp saw that status (and nothing reached the trunk).
async fn sipp_expects(
    ml: &Maskline,
    status: u16,
    ip: IpAddr,
    caller: &str,
    dialled: &str,
) -> Result<()> {
    let run = Sipp::spawn(
        &SippOptions::uac(
            &format!("uac_expect_{status}.xml"),
            ip,
            ml.ports().sipp(0),
            ml.sip_addr(),
            dialled,
        )
        .key("caller", caller),
        ml.dir(),
        &format!("expect_{status}"),
    )?;
    let outcome = run.finish(Duration::from_secs(25)).await?;
    assert!(
        outcome.succeeded(),
        "expected {status} for {caller} → {dialled}:\n{}",
        outcome.describe()
    );
    Ok(())
}

#[tokio::test]
async fn no_session_for_the_number_gets_404() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        // A pool number with no session, and a number Maskline does not own.
        sipp_expects(&ml, 404, LOOPBACK, PARTY_A, POOL[0]).await?;
        sipp_expects(&ml, 404, LOOPBACK, PARTY_A, "+15559990000").await
    })
    .await
}

#[tokio::test]
async fn caller_not_a_party_gets_403() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        sipp_expects(&ml, 403, LOOPBACK, STRANGER, &session.masked_number).await
    })
    .await
}

/// The trunk only accepts 127.0.0.1/32; SIPp sends from 127.0.0.2 with a
/// caller that is a party, so only the source address is wrong.
#[tokio::test]
async fn source_outside_inbound_cidrs_gets_403() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions {
            inbound_cidrs: vec!["127.0.0.1/32".into()],
            ..StartOptions::default()
        })
        .await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let other_source = IpAddr::from([127, 0, 0, 2]);
        sipp_expects(&ml, 403, other_source, PARTY_A, &session.masked_number).await
    })
    .await
}

/// A→B is live; B dialling the masked number gets 486, and the live call
/// is untouched (it still hangs up normally).
#[tokio::test]
async fn second_call_while_one_is_live_gets_486() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        sipp_expects(&ml, 486, LOOPBACK, PARTY_B, &session.masked_number).await?;
        call.caller_hangs_up().await
    })
    .await
}
