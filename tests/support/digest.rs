//! Checking HTTP Digest credentials (RFC 2617 MD5) that Maskline sends to
//! a carrier, independently of the engine: MD5 comes from coreutils'
//! `md5sum`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::{E2eError, Result};

/// Digest parameters of an `Authorization`/`Proxy-Authorization` value.
pub fn params(value: &str) -> HashMap<String, String> {
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
pub fn md5_hex(input: &str) -> Result<String> {
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
pub fn expected_response(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_check_matches_the_rfc_2617_example() -> Result<()> {
        let params = params(
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
         nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\"",
        );
        let want = expected_response(&params, "GET", "Circle Of Life")?;
        assert_eq!(params.get("response"), Some(&want));
        assert_ne!(expected_response(&params, "GET", "wrong")?, want);
        Ok(())
    }
}
