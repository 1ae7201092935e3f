//! Server side: stateless nonces, challenges and verification.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sip_config::DigestAlgorithm;

use super::credentials::{constant_time_eq, Algorithm, Credentials, DigestInput};
use super::params::quote;
use super::AuthError;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of timestamp and of (truncated) MAC in a nonce.
const TS_LEN: usize = 8;
const MAC_LEN: usize = 16;

/// The server's secret for minting and checking stateless nonces.
///
/// A nonce is `hex(timestamp_secs_be || HMAC-SHA256(secret, timestamp ||
/// algorithm || realm)[..16])`: validating one needs no storage, and a nonce
/// minted for one realm or algorithm is not accepted for another. Nonces
/// from a previous secret (e.g. before a restart) fail as
/// [`AuthError::BadResponse`], so clients get a fresh challenge.
///
/// Stateless nonces do not track `nc`: a captured request can be replayed
/// until its nonce expires; keep the TTL short (minutes).
#[derive(Clone)]
pub struct NonceSecret {
    key: [u8; 32],
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(..)")
    }
}

impl NonceSecret {
    /// A fresh secret from the thread-local CSPRNG.
    pub fn random() -> Self {
        NonceSecret {
            key: rand::random(),
        }
    }

    /// A secret from known bytes (tests, or a secret shared by replicas).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        NonceSecret { key }
    }

    /// One `WWW-Authenticate` / `Proxy-Authenticate` header value per
    /// algorithm, strongest first (SHA-256 before MD5, RFC 8760 §2.4), each
    /// with its own nonce and `qop="auth"`, plus `stale=true` when `stale`.
    /// An empty `algorithms` list offers MD5.
    pub fn challenge(
        &self,
        realm: &str,
        algorithms: &[DigestAlgorithm],
        stale: bool,
        now_unix: u64,
    ) -> Vec<String> {
        let offered: Vec<Algorithm> = if algorithms.is_empty() {
            vec![Algorithm::Md5]
        } else {
            [Algorithm::Sha256, Algorithm::Md5]
                .into_iter()
                .filter(|a| algorithms.iter().any(|&c| Algorithm::from(c) == *a))
                .collect()
        };
        offered
            .into_iter()
            .map(|algorithm| {
                let mut value = format!(
                    "Digest realm={}, nonce=\"{}\", algorithm={}, qop=\"auth\"",
                    quote(realm),
                    self.nonce(realm, algorithm, now_unix),
                    algorithm.as_str()
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Check an `Authorization` / `Proxy-Authorization` header value against
    /// our `realm` and the request `method`; returns the authenticated
    /// username.
    ///
    /// `lookup` maps a username to its password. Accepts `qop=auth` (with
    /// `nc` and `cnonce`) and the RFC 2069 form without qop, for the MD5 and
    /// SHA-256 nonces this secret minted within `nonce_ttl_secs` of
    /// `now_unix`. [`AuthError::StaleNonce`] only when everything else is
    /// right. The `uri` parameter is not compared with the Request-URI.
    pub fn verify(
        &self,
        header_value: &str,
        realm: &str,
        method: &str,
        lookup: impl Fn(&str) -> Option<String>,
        now_unix: u64,
        nonce_ttl_secs: u64,
    ) -> Result<String, AuthError> {
        let creds = Credentials::parse(header_value)?;
        let algorithm = match creds.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(token) => match Algorithm::from_token(token) {
                Some(a @ (Algorithm::Md5 | Algorithm::Sha256)) => a,
                _ => return Err(AuthError::UnsupportedAlgorithm),
            },
        };
        if creds.realm != realm {
            return Err(AuthError::RealmMismatch);
        }
        let qop_auth = match creds.qop.as_deref() {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                creds.nc.as_deref().zip(creds.cnonce.as_deref())
            }
            Some(_) => return Err(AuthError::UnsupportedQop),
        };
        let issued = self
            .nonce_time(&creds.nonce, realm, algorithm)
            .ok_or(AuthError::BadResponse)?;
        let password = lookup(&creds.username).ok_or(AuthError::UnknownUser)?;
        let expected = DigestInput {
            algorithm,
            username: &creds.username,
            realm,
            password: &password,
            method,
            uri: &creds.uri,
            nonce: &creds.nonce,
            qop_auth,
            cnonce: None,
        }
        .response();
        let given = creds.response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(AuthError::BadResponse);
        }
        if issued.abs_diff(now_unix) > nonce_ttl_secs {
            return Err(AuthError::StaleNonce);
        }
        Ok(creds.username)
    }

    fn mac(&self, ts: u64, realm: &str, algorithm: Algorithm) -> [u8; MAC_LEN] {
        // HMAC zero-pads keys shorter than the block, so padding here is the
        // same MAC as keying with the 32 bytes, without a fallible call.
        let mut block = [0u8; 64];
        let (head, _) = block.split_at_mut(self.key.len());
        head.copy_from_slice(&self.key);
        let mut mac = HmacSha256::new(&block.into());
        mac.update(b"maskline-digest-nonce\0");
        mac.update(&ts.to_be_bytes());
        mac.update(algorithm.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(realm.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        for (o, b) in out.iter_mut().zip(full.iter()) {
            *o = *b;
        }
        out
    }

    fn nonce(&self, realm: &str, algorithm: Algorithm, now_unix: u64) -> String {
        let mut raw = [0u8; TS_LEN + MAC_LEN];
        let (ts, mac) = raw.split_at_mut(TS_LEN);
        ts.copy_from_slice(&now_unix.to_be_bytes());
        mac.copy_from_slice(&self.mac(now_unix, realm, algorithm));
        hex::encode(raw)
    }

    /// The issue time of a nonce we minted for this realm and algorithm.
    fn nonce_time(&self, nonce: &str, realm: &str, algorithm: Algorithm) -> Option<u64> {
        let mut raw = [0u8; TS_LEN + MAC_LEN];
        hex::decode_to_slice(nonce, &mut raw).ok()?;
        let (ts, mac) = raw.split_at(TS_LEN);
        let ts = u64::from_be_bytes(ts.try_into().ok()?);
        constant_time_eq(mac, &self.mac(ts, realm, algorithm)).then_some(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{authorization, parse_challenge};
    use super::*;

    const REALM: &str = "maskline.test";
    const NOW: u64 = 1_700_000_000;
    const TTL: u64 = 300;

    fn secret() -> NonceSecret {
        NonceSecret::from_bytes([7; 32])
    }

    fn users(name: &str) -> Option<String> {
        (name == "alice").then(|| "s3cret".to_owned())
    }

    fn answer(challenge: &str, password: &str) -> String {
        let ch = parse_challenge(challenge).unwrap();
        authorization(
            &ch,
            "alice",
            password,
            "REGISTER",
            "sip:maskline.test",
            "abc123",
            1,
        )
    }

    fn one(algorithm: DigestAlgorithm) -> String {
        secret()
            .challenge(REALM, &[algorithm], false, NOW)
            .pop()
            .unwrap()
    }

    fn verify_at(header: &str, now: u64) -> Result<String, AuthError> {
        secret().verify(header, REALM, "REGISTER", users, now, TTL)
    }

    #[test]
    fn challenge_offers_sha256_first_and_marks_stale() {
        let values = secret().challenge(
            REALM,
            &[DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
            true,
            NOW,
        );
        assert_eq!(values.len(), 2);
        assert!(values[0].contains("algorithm=SHA-256"), "{}", values[0]);
        assert!(values[1].contains("algorithm=MD5"), "{}", values[1]);
        for v in &values {
            assert!(v.starts_with("Digest realm=\"maskline.test\", nonce=\""));
            assert!(v.contains("qop=\"auth\""));
            assert!(v.ends_with(", stale=true"));
        }
        let fresh = secret().challenge(REALM, &[DigestAlgorithm::Md5], false, NOW);
        assert_eq!(fresh.len(), 1);
        assert!(!fresh[0].contains("stale"));
    }

    #[test]
    fn round_trip_md5_and_sha256() {
        for algorithm in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
            let header = answer(&one(algorithm), "s3cret");
            assert_eq!(
                verify_at(&header, NOW + 10),
                Ok("alice".to_owned()),
                "{header}"
            );
        }
    }

    #[test]
    fn round_trip_without_qop() {
        for algorithm in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
            let mut ch = parse_challenge(&one(algorithm)).unwrap();
            ch.qop_auth = false;
            let header = authorization(&ch, "alice", "s3cret", "REGISTER", "sip:x", "c", 1);
            assert!(!header.contains("qop"), "{header}");
            assert_eq!(verify_at(&header, NOW), Ok("alice".to_owned()));
        }
    }

    #[test]
    fn expired_nonce_is_stale_only_when_the_response_is_right() {
        let challenge = one(DigestAlgorithm::Sha256);
        let later = NOW + TTL + 1;
        assert_eq!(
            verify_at(&answer(&challenge, "s3cret"), NOW + TTL),
            Ok("alice".into())
        );
        assert_eq!(
            verify_at(&answer(&challenge, "s3cret"), later),
            Err(AuthError::StaleNonce)
        );
        assert_eq!(
            verify_at(&answer(&challenge, "wrong"), later),
            Err(AuthError::BadResponse)
        );
    }

    #[test]
    fn wrong_password_unknown_user_and_wrong_realm() {
        let challenge = one(DigestAlgorithm::Md5);
        assert_eq!(
            verify_at(&answer(&challenge, "wrong"), NOW),
            Err(AuthError::BadResponse)
        );
        let ch = parse_challenge(&challenge).unwrap();
        let bob = authorization(&ch, "bob", "s3cret", "REGISTER", "sip:x", "c", 1);
        assert_eq!(verify_at(&bob, NOW), Err(AuthError::UnknownUser));
        let header = answer(&challenge, "s3cret");
        assert_eq!(
            secret().verify(&header, "other.realm", "REGISTER", users, NOW, TTL),
            Err(AuthError::RealmMismatch)
        );
    }

    #[test]
    fn method_is_part_of_the_response() {
        let header = answer(&one(DigestAlgorithm::Md5), "s3cret");
        assert_eq!(
            secret().verify(&header, REALM, "INVITE", users, NOW, TTL),
            Err(AuthError::BadResponse)
        );
    }

    #[test]
    fn foreign_or_rebound_nonces_are_rejected() {
        let header = answer(&one(DigestAlgorithm::Md5), "s3cret");
        let other = NonceSecret::from_bytes([8; 32]);
        assert_eq!(
            other.verify(&header, REALM, "REGISTER", users, NOW, TTL),
            Err(AuthError::BadResponse)
        );
        // An MD5 nonce answered with SHA-256 (or a tampered timestamp).
        let mut ch = parse_challenge(&one(DigestAlgorithm::Md5)).unwrap();
        ch.algorithm = Algorithm::Sha256;
        let rebound = authorization(&ch, "alice", "s3cret", "REGISTER", "sip:x", "c", 1);
        assert_eq!(verify_at(&rebound, NOW), Err(AuthError::BadResponse));
        let mut ch = parse_challenge(&one(DigestAlgorithm::Md5)).unwrap();
        ch.nonce.replace_range(..2, "ff");
        let tampered = authorization(&ch, "alice", "s3cret", "REGISTER", "sip:x", "c", 1);
        assert_eq!(verify_at(&tampered, NOW), Err(AuthError::BadResponse));
    }

    #[test]
    fn unsupported_algorithm_and_qop() {
        let mut ch = parse_challenge(&one(DigestAlgorithm::Md5)).unwrap();
        ch.algorithm = Algorithm::Md5Sess;
        let sess = authorization(&ch, "alice", "s3cret", "REGISTER", "sip:x", "c", 1);
        assert_eq!(verify_at(&sess, NOW), Err(AuthError::UnsupportedAlgorithm));
        let header = answer(&one(DigestAlgorithm::Md5), "s3cret");
        let sha1 = header.replace("algorithm=MD5", "algorithm=SHA1");
        assert_eq!(verify_at(&sha1, NOW), Err(AuthError::UnsupportedAlgorithm));
        let int = header.replace("qop=auth", "qop=auth-int");
        assert_eq!(verify_at(&int, NOW), Err(AuthError::UnsupportedQop));
    }

    #[test]
    fn missing_and_malformed_credentials() {
        assert_eq!(verify_at("", NOW), Err(AuthError::Missing));
        assert_eq!(
            verify_at("Basic YWxpY2U6czNjcmV0", NOW),
            Err(AuthError::Malformed)
        );
        let header = answer(&one(DigestAlgorithm::Md5), "s3cret");
        let no_nc = header.replace(", nc=00000001", "");
        assert_eq!(verify_at(&no_nc, NOW), Err(AuthError::Malformed));
        let bad_nc = header.replace("nc=00000001", "nc=xyz");
        assert_eq!(verify_at(&bad_nc, NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn uppercase_response_hex_is_accepted() {
        let header = answer(&one(DigestAlgorithm::Sha256), "s3cret");
        let (head, tail) = header.split_once("response=\"").unwrap();
        let (hex, rest) = tail.split_once('"').unwrap();
        let upper = format!("{head}response=\"{}\"{rest}", hex.to_ascii_uppercase());
        assert_eq!(verify_at(&upper, NOW), Ok("alice".to_owned()));
    }

    #[test]
    fn truncated_credentials_never_panic_nor_pass() {
        let header = answer(&one(DigestAlgorithm::Sha256), "s3cret");
        assert!(header.ends_with("nc=00000001"), "{header}");
        for (end, _) in header.char_indices() {
            let prefix = &header[..end];
            assert!(verify_at(prefix, NOW).is_err(), "{prefix:?} passed");
        }
        let mut bytes = header.into_bytes();
        for i in 0..bytes.len() {
            let saved = bytes[i];
            for b in [b'"', b'\\', b',', b'=', b' ', 0xff] {
                bytes[i] = b;
                let mangled = String::from_utf8_lossy(&bytes);
                let _ = verify_at(&mangled, NOW);
            }
            bytes[i] = saved;
        }
    }
}
