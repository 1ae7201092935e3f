//! The trunk's digest challenge (401 and 407) answered with the configured
//! credentials.

use maskline_e2e::{bounded, digest, Result, StartOptions};

use super::{
    both_succeed, first_request, party_a_uac, received, requests, trunk_uas, with_session,
    FLOW_LIMIT,
};

/// The trunk's digest credentials.
const TRUNK_USER: &str = "maskline";
const TRUNK_PASSWORD: &str = "trunk-secret";
/// The nonce the challenge scenarios send.
const NONCE: &str = "8d4a1c0e5b7f42e69a3c1d2b0f6e9a71";

/// The trunk challenges B's INVITE with `status` (401 or 407); Maskline
/// ACKs the challenge and sends the INVITE again in the same call (same
/// Call-ID and From tag, next CSeq, new branch) with the configured
/// credentials, whose digest must be right; A never sees the challenge.
async fn trunk_challenge_is_answered(status: u16) -> Result<()> {
    let (ml, session) = with_session(StartOptions {
        trunk_credentials: Some((TRUNK_USER.into(), TRUNK_PASSWORD.into())),
        ..StartOptions::default()
    })
    .await?;
    let (scenario, header) = match status {
        401 => ("uas_challenge_401.xml", "authorization"),
        _ => ("uas_challenge_407.xml", "proxy-authorization"),
    };
    let keys = [("username", TRUNK_USER), ("password", TRUNK_PASSWORD)];
    let b = trunk_uas(&ml, scenario, false, &keys).await?;
    let a = party_a_uac(
        &ml,
        "uac_masked_call.xml",
        &session.masked_number,
        false,
        "party_a",
    )?;
    let (a, b) = both_succeed(a, b).await?;

    let at_b = received(&b)?;
    let invites = requests(&at_b, "INVITE");
    let [first, retry] = invites.as_slice() else {
        panic!("the trunk must get two INVITEs:\n{}", b.describe());
    };
    let ack = first_request(&at_b, "ACK", &b)?;
    assert_eq!(
        ack.top_branch(),
        first.top_branch(),
        "the {status} is ACKed:\n{}",
        b.describe()
    );
    assert!(first.header(header).is_none(), "{}", first.raw_text());
    assert_eq!(retry.call_id(), first.call_id(), "{}", b.describe());
    assert_eq!(retry.from_tag(), first.from_tag(), "{}", b.describe());
    assert_ne!(retry.top_branch(), first.top_branch(), "{}", b.describe());
    let (Some((n1, _)), Some((n2, _))) = (first.cseq(), retry.cseq()) else {
        panic!("no CSeq:\n{}", b.describe());
    };
    assert_eq!(n2, n1 + 1, "{}", b.describe());
    let Some(credentials) = retry.header(header) else {
        panic!("no {header} in the retried INVITE:\n{}", retry.raw_text());
    };
    let params = digest::params(credentials);
    let get = |k: &str| params.get(k).map(String::as_str);
    assert_eq!(get("username"), Some(TRUNK_USER), "{credentials}");
    assert_eq!(get("realm"), Some("carrier"), "{credentials}");
    assert_eq!(get("nonce"), Some(NONCE), "{credentials}");
    assert_eq!(get("uri"), retry.request_uri(), "{credentials}");
    assert_eq!(get("qop"), Some("auth"), "{credentials}");
    let want = digest::expected_response(&params, "INVITE", TRUNK_PASSWORD)?;
    assert_eq!(
        get("response"),
        Some(want.as_str()),
        "wrong digest in {credentials}"
    );

    let at_a = received(&a)?;
    assert!(
        !at_a.iter().any(|m| m.status().is_some_and(|s| s >= 300)),
        "{}",
        a.describe()
    );
    Ok(())
}

/// Issue: trunk challenge with 407 + Proxy-Authenticate.
#[tokio::test]
async fn trunk_407_challenge_is_answered_with_proxy_authorization() -> Result<()> {
    bounded(FLOW_LIMIT, trunk_challenge_is_answered(407)).await
}

/// The same with 401 + WWW-Authenticate; there SIPp's `verifyauth` checks
/// the digest too (it reads only `Authorization`).
#[tokio::test]
async fn trunk_401_challenge_is_answered_and_verified_by_the_carrier() -> Result<()> {
    bounded(FLOW_LIMIT, trunk_challenge_is_answered(401)).await
}
