//! Bencode (BEP 3), as rtpengine's ng control protocol speaks it: integers,
//! byte strings, lists and dictionaries. Decoding is bounded (depth, input
//! length) and never panics on bad input.

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<n>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l…e`
    List(Vec<Value>),
    /// `d…e`, keys in the order given (encoders here sort them).
    Dict(Vec<(Vec<u8>, Value)>),
}

/// Why bytes are not bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("bencode: truncated")]
    Truncated,
    /// A byte that starts no value, or a malformed number.
    #[error("bencode: unexpected byte at offset {0}")]
    Unexpected(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("bencode: nested too deep")]
    TooDeep,
    /// Bytes left after the top-level value.
    #[error("bencode: trailing bytes at offset {0}")]
    Trailing(usize),
}

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from `(key, value)` pairs (sorted by key, as BEP 3 asks).
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        let mut entries: Vec<(Vec<u8>, Value)> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Dict(entries)
    }

    /// The value under `key` of a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k.as_slice() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a byte string (lossy UTF-8).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Append the encoding of `self` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    Value::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decode exactly one value spanning all of `input`.
    pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
        let (value, used) = decode_at(input, 0, 0)?;
        if used != input.len() {
            return Err(DecodeError::Trailing(used));
        }
        Ok(value)
    }
}

fn byte(input: &[u8], at: usize) -> Result<u8, DecodeError> {
    input.get(at).copied().ok_or(DecodeError::Truncated)
}

/// Digits (optionally signed) from `at` up to `end`; returns (n, offset of
/// `end`).
fn number(input: &[u8], at: usize, end: u8) -> Result<(i64, usize), DecodeError> {
    let stop = input
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == end))
        .ok_or(DecodeError::Truncated)?;
    let text = input
        .get(at..at + stop)
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or(DecodeError::Unexpected(at))?;
    let n = text.parse().map_err(|_| DecodeError::Unexpected(at))?;
    Ok((n, at + stop))
}

fn decode_at(input: &[u8], at: usize, depth: usize) -> Result<(Value, usize), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    match byte(input, at)? {
        b'i' => {
            let (n, end) = number(input, at + 1, b'e')?;
            Ok((Value::Int(n), end + 1))
        }
        b'0'..=b'9' => {
            let (len, colon) = number(input, at, b':')?;
            let len = usize::try_from(len).map_err(|_| DecodeError::Unexpected(at))?;
            let start = colon + 1;
            let bytes = input
                .get(start..start.checked_add(len).ok_or(DecodeError::Truncated)?)
                .ok_or(DecodeError::Truncated)?;
            Ok((Value::Bytes(bytes.to_vec()), start + len))
        }
        b'l' => {
            let mut items = Vec::new();
            let mut pos = at + 1;
            while byte(input, pos)? != b'e' {
                let (item, next) = decode_at(input, pos, depth + 1)?;
                items.push(item);
                pos = next;
            }
            Ok((Value::List(items), pos + 1))
        }
        b'd' => {
            let mut entries = Vec::new();
            let mut pos = at + 1;
            while byte(input, pos)? != b'e' {
                let (key, next) = decode_at(input, pos, depth + 1)?;
                let Value::Bytes(key) = key else {
                    return Err(DecodeError::Unexpected(pos));
                };
                let (value, next) = decode_at(input, next, depth + 1)?;
                entries.push((key, value));
                pos = next;
            }
            Ok((Value::Dict(entries), pos + 1))
        }
        _ => Err(DecodeError::Unexpected(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_an_ng_offer() {
        let v = Value::dict([
            ("command", Value::str("offer")),
            ("call-id", Value::str("c1")),
            ("flags", Value::List(vec![Value::str("trust-address")])),
            ("n", Value::Int(-3)),
        ]);
        let bytes = v.encode();
        assert_eq!(
            bytes,
            b"d7:call-id2:c17:command5:offer5:flagsl13:trust-addresse1:ni-3ee".to_vec()
        );
        assert_eq!(Value::decode(&bytes), Ok(v.clone()));
        assert_eq!(
            v.get("command").and_then(Value::as_text),
            Some("offer".into())
        );
        assert_eq!(v.get("missing"), None);
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        for bad in [
            &b""[..],
            b"i12",
            b"5:abc",
            b"d3:keye",
            b"x",
            b"li1e",
            b"99999999999999999999999:a",
            b"di1ei2ee",
            b"i1ei2e",
        ] {
            assert!(
                Value::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "l".repeat(100), "e".repeat(100));
        assert_eq!(Value::decode(deep.as_bytes()), Err(DecodeError::TooDeep));
    }
}
