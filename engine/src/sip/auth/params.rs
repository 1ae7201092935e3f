//! The `Digest k=v, k="v"` parameter list shared by challenges and
//! credentials (RFC 7235 §2.1, RFC 3261 §25.1 `digest-cln`).

use super::AuthError;

/// Parsed auth-params of a `Digest` challenge or credentials. Names are
/// lower-cased; quoted values are unescaped.
#[derive(Debug, Default)]
pub(super) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parse a whole header value: the `Digest` scheme then its parameters.
    /// Empty (or blank) input is [`AuthError::Missing`]; another scheme, an
    /// unterminated quote, a repeated parameter or control characters are
    /// [`AuthError::Malformed`].
    pub(super) fn parse_digest(header_value: &str) -> Result<Params, AuthError> {
        let value = header_value.trim();
        if value.is_empty() {
            return Err(AuthError::Missing);
        }
        let (scheme, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(AuthError::Malformed);
        }
        Params::parse_list(rest)
    }

    /// Parse `name=value` pairs separated by commas. Empty list elements are
    /// allowed (RFC 7230 §7); whitespace around `=` and `,` is ignored.
    fn parse_list(input: &str) -> Result<Params, AuthError> {
        let mut params = Params::default();
        let mut chars = input.chars().peekable();
        loop {
            while chars.next_if(|&c| c == ',' || is_ws(c)).is_some() {}
            if chars.peek().is_none() {
                return Ok(params);
            }
            let mut name = String::new();
            while let Some(c) = chars.next_if(|&c| is_token_char(c)) {
                name.push(c.to_ascii_lowercase());
            }
            while chars.next_if(|&c| is_ws(c)).is_some() {}
            if name.is_empty() || chars.next() != Some('=') {
                return Err(AuthError::Malformed);
            }
            while chars.next_if(|&c| is_ws(c)).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'"').is_some() {
                loop {
                    match chars.next() {
                        None => return Err(AuthError::Malformed),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => return Err(AuthError::Malformed),
                        },
                        Some(c) => value.push(c),
                    }
                }
            } else {
                // Lenient: lax peers send unquoted URIs and base64 nonces.
                while let Some(c) = chars.next_if(|&c| !(c == ',' || c == '"' || is_ws(c))) {
                    value.push(c);
                }
                if value.is_empty() {
                    return Err(AuthError::Malformed);
                }
            }
            while chars.next_if(|&c| is_ws(c)).is_some() {}
            if !matches!(chars.peek(), None | Some(',')) {
                return Err(AuthError::Malformed);
            }
            // A CR or LF in a value could inject header lines when echoed.
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(AuthError::Malformed);
            }
            if params.get(&name).is_some() {
                return Err(AuthError::Malformed);
            }
            params.pairs.push((name, value));
        }
    }

    /// The value of parameter `name` (lower-case), if present.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a parameter that must be present.
    pub(super) fn require(&self, name: &str) -> Result<&str, AuthError> {
        self.get(name).ok_or(AuthError::Malformed)
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// RFC 7230 `tchar`: what a parameter name is made of.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// `"value"` with `\` and `"` escaped; control characters are dropped so a
/// value can never break out of its header line.
pub(super) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_commas_case_and_whitespace() {
        let p = Params::parse_digest(
            "  dIgEsT   Realm = \"a \\\"b\\\", c\" ,, NONCE=abc/def= ,qop=\"auth,auth-int\",x-unknown=1  ",
        )
        .unwrap();
        assert_eq!(p.get("realm"), Some("a \"b\", c"));
        assert_eq!(p.get("nonce"), Some("abc/def="));
        assert_eq!(p.get("qop"), Some("auth,auth-int"));
        assert_eq!(p.get("x-unknown"), Some("1"));
        assert_eq!(p.get("opaque"), None);
    }

    #[test]
    fn bad_lists_are_malformed() {
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Digest realm",
            "Digest realm=",
            "Digest realm=\"open",
            "Digest realm=\"x\\",
            "Digest realm=a b",
            "Digest =a",
            "Digest realm=a, realm=b",
            "Digest realm=\"a\r\nVia: x\"",
            "Digest realm=\"a\"b",
        ] {
            assert_eq!(
                Params::parse_digest(bad).err(),
                Some(AuthError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(Params::parse_digest(" ").err(), Some(AuthError::Missing));
    }

    #[test]
    fn quote_round_trips_through_the_parser() {
        let raw = "we\"ird\\ realm, ok";
        let header = format!("Digest realm={}", quote(raw));
        let p = Params::parse_digest(&header).unwrap();
        assert_eq!(p.get("realm"), Some(raw));
        assert_eq!(quote("a\r\nb"), "\"ab\"");
    }
}
