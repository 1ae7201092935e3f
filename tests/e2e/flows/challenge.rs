//! The trunk's digest challenge (401 and 407) answered with the configured
//! credentials.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use maskline_e2e::{bounded, E2eError, Result, StartOptions};

use super::{
    both_succeed, first_request, party_a_uac, received, requests, trunk_uas, with_session,
    FLOW_LIMIT,
};

/// The trunk's digest credentials.
const TRUNK_USER: &str = "maskline";
const TRUNK_PASSWORD: &str = "trunk-secret";
/// The nonce the challenge scenarios send.
const NONCE: &str = "8d4a1c0e5b7f42e69a3c1d2b0f6e9a71";

/// Digest parameters of an `Authorization`/`Proxy-Authorization` value.
fn digest_params(value: &str) -> HashMap<String, String> {
    let value = value.trim();
    let value = value.strip_prefix("Digest").unwrap_or(value);
    value
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// MD5 as lower-case hex, from coreutils' `md5sum` (an implementation
/// independent of the engine's).
fn md5_hex(input: &str) -> Result<String> {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| E2eError::io("running md5sum", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| E2eError::io("writing to md5sum", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| E2eError::io("reading md5sum", e))?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| E2eError::Unexpected("md5sum printed nothing".into()))
}

/// The digest `response` that `params` must carry for `method` and
/// `password` (RFC 2617 §3.2.2, MD5, with or without `qop=auth`).
fn expected_digest(
    params: &HashMap<String, String>,
    method: &str,
    password: &str,
) -> Result<String> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    let ha1 = md5_hex(&format!("{}:{}:{password}", get("username"), get("realm")))?;
    let ha2 = md5_hex(&format!("{method}:{}", get("uri")))?;
    match params.get("qop") {
        Some(qop) => md5_hex(&format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            get("nonce"),
            get("nc"),
            get("cnonce")
        )),
        None => md5_hex(&format!("{ha1}:{}:{ha2}", get("nonce"))),
    }
}

#[test]
fn digest_check_matches_the_rfc_2617_example() -> Result<()> {
    let params = digest_params(
        "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
         nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\"",
    );
    let want = expected_digest(&params, "GET", "Circle Of Life")?;
    assert_eq!(params.get("response"), Some(&want));
    assert_ne!(expected_digest(&params, "GET", "wrong")?, want);
    Ok(())
}

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
    let params = digest_params(credentials);
    let get = |k: &str| params.get(k).map(String::as_str);
    assert_eq!(get("username"), Some(TRUNK_USER), "{credentials}");
    assert_eq!(get("realm"), Some("carrier"), "{credentials}");
    assert_eq!(get("nonce"), Some(NONCE), "{credentials}");
    assert_eq!(get("uri"), retry.request_uri(), "{credentials}");
    assert_eq!(get("qop"), Some("auth"), "{credentials}");
    let want = expected_digest(&params, "INVITE", TRUNK_PASSWORD)?;
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
