//! Client side: answering a 401/407 challenge from a carrier.

use super::credentials::{Algorithm, DigestInput};
use super::params::{quote, Params};
use super::AuthError;

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` challenge that
/// [`authorization`] can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// The server offered `qop="auth"`; when false the answer uses the
    /// RFC 2069 form without qop, nc and cnonce.
    pub qop_auth: bool,
    /// `stale=true`: the previous credentials were right, only the nonce
    /// expired; retry without asking anyone for a password.
    pub stale: bool,
}

/// Parse one challenge header value.
///
/// [`AuthError::UnsupportedAlgorithm`] for an unknown algorithm and
/// [`AuthError::UnsupportedQop`] when a qop list lacks `auth` (e.g. only
/// `auth-int`), so a returned [`Challenge`] can always be answered.
pub fn parse_challenge(header_value: &str) -> Result<Challenge, AuthError> {
    let p = Params::parse_digest(header_value)?;
    let realm = p.require("realm")?.to_owned();
    let nonce = p.require("nonce")?.to_owned();
    let algorithm = match p.get("algorithm") {
        None => Algorithm::Md5,
        Some(token) => Algorithm::from_token(token).ok_or(AuthError::UnsupportedAlgorithm)?,
    };
    let qop_auth = match p.get("qop") {
        None => false,
        Some(list)
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
        {
            true
        }
        Some(_) => return Err(AuthError::UnsupportedQop),
    };
    Ok(Challenge {
        realm,
        nonce,
        opaque: p.get("opaque").map(str::to_owned),
        algorithm,
        qop_auth,
        stale: p
            .get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

/// Pick the strongest answerable challenge among a response's
/// `WWW-Authenticate` (or `Proxy-Authenticate`) values: SHA-512-256, then
/// SHA-256, then MD5. With none answerable, the first value's error
/// ([`AuthError::Missing`] when there are no values).
pub fn pick_challenge<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
) -> Result<Challenge, AuthError> {
    let mut best: Option<Challenge> = None;
    let mut first_error = None;
    for value in header_values {
        match parse_challenge(value) {
            Ok(ch) => {
                if best
                    .as_ref()
                    .is_none_or(|b| strength(ch.algorithm) > strength(b.algorithm))
                {
                    best = Some(ch);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    best.ok_or(first_error.unwrap_or(AuthError::Missing))
}

fn strength(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::Md5 | Algorithm::Md5Sess => 0,
        Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
        Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 2,
    }
}

/// The `Authorization` / `Proxy-Authorization` header value answering `ch`
/// for a request `method` to `uri` (the Request-URI, as sent).
///
/// `cnonce` is a fresh client nonce and `nc` counts requests made with this
/// nonce (from 1); both are only sent with `qop=auth` (and `-sess`).
pub fn authorization(
    ch: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let nc = format!("{nc:08x}");
    let response = DigestInput {
        algorithm: ch.algorithm,
        username,
        realm: &ch.realm,
        password,
        method,
        uri,
        nonce: &ch.nonce,
        qop_auth: ch.qop_auth.then_some((nc.as_str(), cnonce)),
        cnonce: Some(cnonce),
    }
    .response();
    let mut value = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        ch.algorithm.as_str(),
    );
    if ch.qop_auth || ch.algorithm.is_session() {
        value.push_str(&format!(", cnonce={}", quote(cnonce)));
    }
    if let Some(opaque) = &ch.opaque {
        value.push_str(&format!(", opaque={}", quote(opaque)));
    }
    if ch.qop_auth {
        value.push_str(&format!(", qop=auth, nc={nc}"));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616(algorithm: &str) -> String {
        let challenge = format!(
            "Digest\n realm=\"http-auth@example.org\",\n qop=\"auth, auth-int\",\n \
             algorithm={algorithm},\n nonce=\"{RFC7616_NONCE}\",\n \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        );
        let ch = parse_challenge(&challenge).unwrap();
        authorization(
            &ch,
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            RFC7616_CNONCE,
            1,
        )
    }

    #[test]
    fn rfc7616_md5_example() {
        let header = rfc7616("MD5");
        assert!(
            header.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{header}"
        );
    }

    #[test]
    fn rfc7616_sha256_example() {
        let header = rfc7616("SHA-256");
        assert_eq!(
            header,
            format!(
                "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
                 nonce=\"{RFC7616_NONCE}\", uri=\"/dir/index.html\", \
                 response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
                 algorithm=SHA-256, cnonce=\"{RFC7616_CNONCE}\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001"
            )
        );
    }

    #[test]
    fn rfc2617_example() {
        let ch = parse_challenge(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert!(ch.qop_auth && !ch.stale);
        let header = authorization(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert!(
            header.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{header}"
        );
        assert!(header.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn challenge_fields_and_stale() {
        let ch = parse_challenge(
            "DIGEST NONCE=\"n\", REALM=\"sip.carrier.example\", Algorithm=sha-256, \
             Stale=TRUE, domain=\"sip:carrier.example\"",
        )
        .unwrap();
        assert_eq!(
            ch,
            Challenge {
                realm: "sip.carrier.example".into(),
                nonce: "n".into(),
                opaque: None,
                algorithm: Algorithm::Sha256,
                qop_auth: false,
                stale: true,
            }
        );
        let header = authorization(&ch, "u", "p", "INVITE", "sip:+1555@carrier", "c", 1);
        assert!(
            !header.contains("cnonce") && !header.contains("nc="),
            "{header}"
        );
    }

    #[test]
    fn unanswerable_challenges() {
        let base = "Digest realm=\"r\", nonce=\"n\"";
        assert_eq!(
            parse_challenge(&format!("{base}, qop=\"auth-int\"")),
            Err(AuthError::UnsupportedQop)
        );
        assert_eq!(
            parse_challenge(&format!("{base}, algorithm=SHA1")),
            Err(AuthError::UnsupportedAlgorithm)
        );
        assert_eq!(
            parse_challenge("Digest realm=\"r\""),
            Err(AuthError::Malformed)
        );
        assert_eq!(parse_challenge(""), Err(AuthError::Missing));
    }

    #[test]
    fn pick_prefers_the_strongest_answerable() {
        let md5 = "Digest realm=\"r\", nonce=\"a\", algorithm=MD5, qop=\"auth\"";
        let sha = "Digest realm=\"r\", nonce=\"b\", algorithm=SHA-256, qop=\"auth\"";
        assert_eq!(pick_challenge([md5, sha]).map(|c| c.nonce), Ok("b".into()));
        assert_eq!(pick_challenge([sha, md5]).map(|c| c.nonce), Ok("b".into()));
        assert_eq!(
            pick_challenge(["Digest realm=\"r\", nonce=\"x\", algorithm=SHA1", md5])
                .map(|c| c.nonce),
            Ok("a".into())
        );
        assert_eq!(
            pick_challenge(["Basic realm=\"r\""]),
            Err(AuthError::Malformed)
        );
        assert_eq!(pick_challenge([]), Err(AuthError::Missing));
    }

    #[test]
    fn session_algorithm_sends_cnonce() {
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess").unwrap();
        let header = authorization(&ch, "u", "p", "INVITE", "sip:x", "cn", 1);
        assert!(
            header.contains("cnonce=\"cn\"") && !header.contains("qop"),
            "{header}"
        );
    }

    #[test]
    fn truncated_challenges_never_panic() {
        let valid = "Digest realm=\"a \\\"q\\\", b\", nonce=\"n,=\\\\\", qop=\"auth\", \
                     algorithm=SHA-256, opaque=\"ö\", stale=false";
        assert!(parse_challenge(valid).is_ok());
        for (end, _) in valid.char_indices() {
            let _ = parse_challenge(&valid[..end]);
            let _ = parse_challenge(&valid[end..]);
        }
    }
}
