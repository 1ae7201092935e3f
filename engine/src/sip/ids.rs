//! Fresh identifiers: Via branches, tags, Call-IDs, engine call ids.

use rand::Rng;

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A new RFC 3261 branch (`z9hG4bK` magic cookie + 16 random chars).
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

/// A new From/To tag (12 random chars).
pub fn new_tag() -> String {
    random_token(12)
}

/// A new Call-ID (`<24 random chars>@<host>`); carries nothing of the
/// other leg.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{}", random_token(24), host)
}

/// A new engine call id (`cal_` + 24 random chars).
pub fn new_engine_call_id() -> String {
    format!("cal_{}", random_token(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(new_branch().starts_with("z9hG4bK"));
        assert_eq!(new_branch().len(), 23);
        assert_ne!(new_tag(), new_tag());
        assert!(new_call_id("10.0.0.1").ends_with("@10.0.0.1"));
        assert!(new_engine_call_id().starts_with("cal_"));
    }
}
