//! The digest computation (RFC 2617 §3.2.2, RFC 7616 §3.4) and the
//! `Authorization` credentials it is checked against.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use super::params::Params;
use super::AuthError;

/// A digest algorithm as named in the `algorithm` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the default when the parameter is absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (RFC 7616, RFC 8760).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Parse the `algorithm` token (case-insensitive).
    pub fn from_token(token: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// The token as written on the wire, e.g. `SHA-256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` variant (A1 also covers nonce and cnonce).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Lower-case hex of the hash of `data`.
    fn hash_hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => {
                hex::encode(Sha512_256::digest(data))
            }
        }
    }
}

impl From<sip_config::DigestAlgorithm> for Algorithm {
    fn from(a: sip_config::DigestAlgorithm) -> Self {
        match a {
            sip_config::DigestAlgorithm::Md5 => Algorithm::Md5,
            sip_config::DigestAlgorithm::Sha256 => Algorithm::Sha256,
        }
    }
}

/// Everything the `response` value depends on.
pub(super) struct DigestInput<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `Some((nc, cnonce))` for `qop=auth`, `None` for the RFC 2069 form.
    pub qop_auth: Option<(&'a str, &'a str)>,
    /// The cnonce for `-sess` algorithms when no qop is used.
    pub cnonce: Option<&'a str>,
}

impl DigestInput<'_> {
    /// The lower-case hex `response` value.
    pub(super) fn response(&self) -> String {
        let h = |s: &str| self.algorithm.hash_hex(s);
        let mut ha1 = h(&format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        if self.algorithm.is_session() {
            let cnonce = self.qop_auth.map(|(_, c)| c).or(self.cnonce).unwrap_or("");
            ha1 = h(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = h(&format!("{}:{}", self.method, self.uri));
        match self.qop_auth {
            Some((nc, cnonce)) => h(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce)),
            None => h(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

/// Credentials from an `Authorization` / `Proxy-Authorization` value.
#[derive(Debug)]
pub(super) struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// Absent means MD5.
    pub algorithm: Option<String>,
    /// `None` for the RFC 2069 form; else the qop token the client chose.
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

impl Credentials {
    /// Parse and check that the required parameters are there.
    pub(super) fn parse(header_value: &str) -> Result<Credentials, AuthError> {
        let p = Params::parse_digest(header_value)?;
        let owned = |name: &str| p.get(name).map(str::to_owned);
        let creds = Credentials {
            username: p.require("username")?.to_owned(),
            realm: p.require("realm")?.to_owned(),
            nonce: p.require("nonce")?.to_owned(),
            uri: p.require("uri")?.to_owned(),
            response: p.require("response")?.to_owned(),
            algorithm: owned("algorithm"),
            qop: owned("qop"),
            nc: owned("nc"),
            cnonce: owned("cnonce"),
        };
        if creds.qop.is_some() {
            let nc_ok = creds
                .nc
                .as_deref()
                .is_some_and(|nc| !nc.is_empty() && nc.chars().all(|c| c.is_ascii_hexdigit()));
            if !nc_ok || creds.cnonce.as_deref().is_none_or(str::is_empty) {
                return Err(AuthError::Malformed);
            }
        }
        Ok(creds)
    }
}

/// Equality that does not stop at the first differing byte.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc7616(algorithm: Algorithm) -> String {
        DigestInput {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop_auth: Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            cnonce: None,
        }
        .response()
    }

    #[test]
    fn rfc7616_md5_vector() {
        assert_eq!(rfc7616(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_vector() {
        assert_eq!(
            rfc7616(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn sha512_256_matches_an_independent_computation() {
        // Computed with Python's hashlib.new("sha512_256") over the same
        // inputs as the RFC 7616 vectors.
        assert_eq!(rfc7616(Algorithm::Sha512_256), SHA512_256_EXPECTED);
    }

    const SHA512_256_EXPECTED: &str =
        "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0";

    #[test]
    fn algorithm_tokens_are_case_insensitive() {
        assert_eq!(Algorithm::from_token("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_token("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(
            Algorithm::from_token("SHA-512-256-SESS"),
            Some(Algorithm::Sha512_256Sess)
        );
        assert_eq!(Algorithm::from_token("SHA1"), None);
    }

    #[test]
    fn constant_time_eq_compares_bytes_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
