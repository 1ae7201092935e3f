//! Standard Webhooks v1 signatures: secrets (`whsec_` + base64 of 32
//! random bytes) and `webhook-signature: v1,<base64(HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}"))>`, where the key is the base64-decoded part
//! of the secret after `whsec_`.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

/// Prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
pub const SECRET_BYTES: usize = 32;

/// Decodes secrets with or without `=` padding (as other implementations
/// accept both).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A secret that cannot be used to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not `whsec_` + base64.
    #[error("webhook secret is not `whsec_` followed by base64")]
    MalformedSecret,
}

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::rng().random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key of a secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let b64 = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SignatureError::MalformedSecret)?;
    let key = LENIENT
        .decode(b64)
        .map_err(|_| SignatureError::MalformedSecret)?;
    if key.is_empty() {
        return Err(SignatureError::MalformedSecret);
    }
    Ok(key)
}

/// The `webhook-id` of an event: stable across retries.
pub fn message_id(event_id: i64) -> String {
    format!("msg_{event_id}")
}

/// The `webhook-signature` value for `body` sent as `msg_id` at
/// `timestamp` (unix seconds, as in `webhook-timestamp`).
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SignatureError> {
    let key = secret_key(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| SignatureError::MalformedSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let tag = mac.finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (also produced by the
    /// `standardwebhooks` Python package).
    #[test]
    fn signs_the_reference_vector() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn any_change_changes_the_signature() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let base = sign(secret, "msg_1", 10, "{}");
        assert_ne!(base, sign(secret, "msg_2", 10, "{}"));
        assert_ne!(base, sign(secret, "msg_1", 11, "{}"));
        assert_ne!(base, sign(secret, "msg_1", 10, "{ }"));
        assert_ne!(base, sign(&new_secret(), "msg_1", 10, "{}"));
    }

    #[test]
    fn new_secrets_are_whsec_and_32_random_bytes() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"), "{s}");
        assert_eq!(secret_key(&s).map(|k| k.len()), Ok(32));
        assert_ne!(s, new_secret());
        assert!(sign(&s, "msg_1", 1, "{}").is_ok_and(|v| v.starts_with("v1,")));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_***",
        ] {
            assert_eq!(
                sign(bad, "msg_1", 1, "{}"),
                Err(SignatureError::MalformedSecret),
                "{bad}"
            );
        }
        // Unpadded base64 is accepted, like other implementations do.
        assert!(secret_key("whsec_Zm9vYg").is_ok_and(|k| k == b"foob"));
    }

    #[test]
    fn message_id_is_stable_per_event() {
        assert_eq!(message_id(42), "msg_42");
    }
}
