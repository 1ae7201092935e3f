//! Identifiers: a type prefix plus 24 random `[a-z0-9]` characters
//! (`ses_…`, `ten_…`, `key_…`), and API keys (`mk_` + 64 hex characters).

use rand::Rng;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const RANDOM_LEN: usize = 24;

fn with_prefix(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + RANDOM_LEN);
    id.push_str(prefix);
    for _ in 0..RANDOM_LEN {
        let i = rng.random_range(0..ALPHABET.len());
        id.push(char::from(ALPHABET[i]));
    }
    id
}

/// A new session id (`ses_` + 24 random characters).
pub fn session_id() -> String {
    with_prefix("ses_")
}

/// A new call id for an originated call (`cal_` + 24 random characters,
/// the engine's own format).
pub fn call_id() -> String {
    with_prefix("cal_")
}

/// A new tenant id (`ten_` + 24 random characters).
pub fn tenant_id() -> String {
    with_prefix("ten_")
}

/// A new API key row id (`key_` + 24 random characters). Not the key itself.
pub fn api_key_id() -> String {
    with_prefix("key_")
}

/// A new webhook endpoint id (`whe_` + 24 random characters).
pub fn webhook_endpoint_id() -> String {
    with_prefix("whe_")
}

/// A new secret API key: `mk_` + 64 hex characters from 32 random bytes.
pub fn api_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("mk_{}", hex::encode(bytes))
}

/// SHA-256 of an API key, lower-case hex. Only this is ever stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shape(id: &str, prefix: &str) {
        let rest = id
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{id} lacks {prefix}"));
        assert_eq!(rest.len(), RANDOM_LEN, "{id}");
        assert!(
            rest.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{id}"
        );
    }

    #[test]
    fn ids_have_prefix_and_alphabet() {
        assert_shape(&session_id(), "ses_");
        assert_shape(&tenant_id(), "ten_");
        assert_shape(&api_key_id(), "key_");
        assert_shape(&webhook_endpoint_id(), "whe_");
        assert_ne!(session_id(), session_id());
    }

    #[test]
    fn api_key_is_mk_plus_64_hex() {
        let key = api_key();
        let hex_part = key.strip_prefix("mk_").unwrap_or_default();
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(api_key(), key);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
