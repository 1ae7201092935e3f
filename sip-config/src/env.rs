//! `MASKLINE_<SECTION>_<KEY>` environment overrides.
//!
//! Every key of the table sections `[sip] [rtp] [http] [store] [recording]
//! [calls] [webhooks] [log] [cluster]` can be set from the environment, e.g.
//! `MASKLINE_SIP_LISTEN=127.0.0.1:5070` or `MASKLINE_RTP_PORT_MIN=30000`.
//! Lists are comma-separated (`MASKLINE_SIP_DIGEST_ALGORITHMS=MD5,SHA-256`,
//! `MASKLINE_WEBHOOKS_RETRY_SCHEDULE_SECS=0,5,300`); an empty value is an
//! empty list. An empty value unsets an optional key (`MASKLINE_RTP_BIND_ADDRESS=`).
//! Values are trimmed.
//!
//! The array-of-tables sections `[[trunks]]`, `[[tenants]]` and `[[users]]`
//! are file-only: they have no environment overrides.
//!
//! Overrides are applied to the parsed TOML table before it is turned into a
//! [`Config`](crate::Config), so a value that parses here but does not fit
//! the field (a port above 65535, an address that is not `ip:port`) is
//! reported against the variable too (see `load`).

use toml::{Table, Value};

use crate::error::ConfigError;

/// Prefix of every override variable.
pub const ENV_PREFIX: &str = "MASKLINE_";

/// How an override value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string (addresses, URLs, paths too).
    Text,
    /// A string; an empty value removes the key (back to its default).
    OptionalText,
    /// An integer.
    Integer,
    /// A comma-separated list of strings.
    TextList,
    /// A comma-separated list of integers.
    IntegerList,
}

/// One overridable key.
struct Override {
    section: &'static str,
    key: &'static str,
    kind: Kind,
}

const fn ov(section: &'static str, key: &'static str, kind: Kind) -> Override {
    Override { section, key, kind }
}

/// Every overridable key; the test `overrides_cover_every_section_key` keeps
/// this in step with the model.
const OVERRIDES: &[Override] = &[
    ov("sip", "listen", Kind::Text),
    ov("sip", "public_address", Kind::Text),
    ov("sip", "digest_algorithms", Kind::TextList),
    ov("rtp", "port_min", Kind::Integer),
    ov("rtp", "port_max", Kind::Integer),
    ov("rtp", "media_timeout_secs", Kind::Integer),
    ov("rtp", "bind_address", Kind::OptionalText),
    ov("http", "listen", Kind::Text),
    ov("http", "rate_limit_per_sec", Kind::Integer),
    ov("http", "rate_limit_burst", Kind::Integer),
    ov("store", "url", Kind::Text),
    ov("recording", "dir", Kind::Text),
    ov("calls", "ring_timeout_secs", Kind::Integer),
    ov("calls", "control_timeout_secs", Kind::Integer),
    ov("calls", "drain_timeout_secs", Kind::Integer),
    ov("webhooks", "retry_schedule_secs", Kind::IntegerList),
    ov("webhooks", "timeout_secs", Kind::Integer),
    ov("log", "format", Kind::Text),
    ov("log", "level", Kind::Text),
    ov("cluster", "node_id", Kind::OptionalText),
    ov("cluster", "secret", Kind::OptionalText),
    ov("cluster", "lease_secs", Kind::Integer),
    ov("cluster", "advertise_http", Kind::OptionalText),
];

/// The variable that overrides `section.key`, e.g. `MASKLINE_RTP_PORT_MIN`.
pub fn var_name(section: &str, key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// Every override variable with the key it sets, e.g.
/// `("MASKLINE_RTP_PORT_MIN", "rtp.port_min")`.
pub fn override_vars() -> impl Iterator<Item = (String, String)> {
    OVERRIDES.iter().map(|o| {
        (
            var_name(o.section, o.key),
            format!("{}.{}", o.section, o.key),
        )
    })
}

/// An override that was applied: which variable set which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// e.g. `MASKLINE_RTP_PORT_MIN`
    pub var: String,
    /// e.g. `rtp.port_min`
    pub key: String,
}

/// Overlays the variables `env` returns onto `table`.
pub(crate) fn apply(
    table: &mut Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Applied>, ConfigError> {
    let mut applied = Vec::new();
    for o in OVERRIDES {
        let var = var_name(o.section, o.key);
        let Some(raw) = env(&var) else { continue };
        let key = format!("{}.{}", o.section, o.key);
        let value = parse(o.kind, &raw).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message: format!("sets {key}: {message}"),
        })?;
        let section = table
            .entry(o.section)
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(section) = section else {
            return Err(ConfigError::Env {
                var,
                message: format!(
                    "sets {key}, but `{}` in the config file is not a table; write it as [{}]",
                    o.section, o.section
                ),
            });
        };
        match value {
            Some(value) => {
                section.insert(o.key.to_owned(), value);
            }
            None => {
                section.remove(o.key);
            }
        }
        applied.push(Applied { var, key });
    }
    Ok(applied)
}

/// Fails when an override variable of the process environment is not UTF-8
/// (it would otherwise be silently ignored).
pub(crate) fn check_process_env_utf8() -> Result<(), ConfigError> {
    for (var, key) in override_vars() {
        if std::env::var_os(&var).is_some_and(|v| v.into_string().is_err()) {
            return Err(ConfigError::Env {
                var,
                message: format!("sets {key}: the value is not valid UTF-8"),
            });
        }
    }
    Ok(())
}

/// Reads `raw` as `kind`; `Ok(None)` removes the key.
fn parse(kind: Kind, raw: &str) -> Result<Option<Value>, String> {
    let raw = raw.trim();
    Ok(Some(match kind {
        Kind::Text => Value::String(raw.to_owned()),
        Kind::OptionalText if raw.is_empty() => return Ok(None),
        Kind::OptionalText => Value::String(raw.to_owned()),
        Kind::Integer => Value::Integer(parse_integer(raw)?),
        Kind::TextList => Value::Array(
            split_list(raw)?
                .into_iter()
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::IntegerList => Value::Array(
            split_list(raw)?
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    parse_integer(s)
                        .map(Value::Integer)
                        .map_err(|e| format!("item {}: {e}", i + 1))
                })
                .collect::<Result<_, _>>()?,
        ),
    }))
}

fn parse_integer(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("expected an integer, got `{s}`"))
}

/// Splits a comma-separated list; an empty string is an empty list.
fn split_list(raw: &str) -> Result<Vec<&str>, String> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, item)| {
            if item.is_empty() {
                Err(format!(
                    "item {} of the comma-separated list is empty",
                    i + 1
                ))
            } else {
                Ok(item)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::Config;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn var_names_are_upper_case_section_and_key() {
        assert_eq!(var_name("rtp", "port_min"), "MASKLINE_RTP_PORT_MIN");
        assert!(override_vars().any(|(v, k)| v == "MASKLINE_STORE_URL" && k == "store.url"));
    }

    /// Every key a table section serializes to has an override, and every
    /// override names a real key.
    #[test]
    fn overrides_cover_every_section_key() {
        let mut config = Config::default();
        config.rtp.bind_address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        config.cluster.node_id = Some("n".into());
        config.cluster.secret = Some("s".into());
        config.cluster.advertise_http = Some(config.http.listen);
        let table = match toml::Table::try_from(&config) {
            Ok(t) => t,
            Err(e) => panic!("serialize: {e}"),
        };
        let mut model_keys = BTreeSet::new();
        for (section, value) in &table {
            if let Value::Table(t) = value {
                for key in t.keys() {
                    model_keys.insert(format!("{section}.{key}"));
                }
            }
        }
        let override_keys: BTreeSet<String> = override_vars().map(|(_, k)| k).collect();
        assert_eq!(model_keys, override_keys);
    }

    #[test]
    fn overlays_typed_values() {
        let mut table = Table::new();
        let env = env_of(&[
            ("MASKLINE_SIP_LISTEN", "127.0.0.1:5070"),
            ("MASKLINE_RTP_PORT_MIN", " 30000 "),
            ("MASKLINE_SIP_DIGEST_ALGORITHMS", "MD5, SHA-256"),
            ("MASKLINE_WEBHOOKS_RETRY_SCHEDULE_SECS", "0,1,2"),
        ]);
        let applied = match apply(&mut table, &env) {
            Ok(a) => a,
            Err(e) => panic!("apply: {e}"),
        };
        assert_eq!(applied.len(), 4);
        let expected: Table = match toml::from_str(
            r#"
            sip = { listen = "127.0.0.1:5070", digest_algorithms = ["MD5", "SHA-256"] }
            rtp = { port_min = 30000 }
            webhooks = { retry_schedule_secs = [0, 1, 2] }
            "#,
        ) {
            Ok(t) => t,
            Err(e) => panic!("expected table: {e}"),
        };
        assert_eq!(table, expected);
    }

    #[test]
    fn empty_value_unsets_optional_key_and_empties_lists() {
        let mut table: Table = match toml::from_str("[rtp]\nbind_address = \"10.0.0.1\"\n") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let env = env_of(&[
            ("MASKLINE_RTP_BIND_ADDRESS", ""),
            ("MASKLINE_SIP_DIGEST_ALGORITHMS", ""),
        ]);
        assert!(apply(&mut table, &env).is_ok());
        assert_eq!(table.get("rtp"), Some(&Value::Table(Table::new())));
        let sip = table.get("sip").and_then(|s| s.get("digest_algorithms"));
        assert_eq!(sip, Some(&Value::Array(Vec::new())));
    }

    #[test]
    fn bad_integer_names_variable_and_key() {
        let mut table = Table::new();
        let env = env_of(&[("MASKLINE_RTP_PORT_MIN", "abc")]);
        match apply(&mut table, &env) {
            Err(ConfigError::Env { var, message }) => {
                assert_eq!(var, "MASKLINE_RTP_PORT_MIN");
                assert!(message.contains("rtp.port_min"), "{message}");
                assert!(message.contains("`abc`"), "{message}");
            }
            other => panic!("expected Env error, got {other:?}"),
        }
    }

    #[test]
    fn bad_list_item_is_named() {
        let mut table = Table::new();
        let env = env_of(&[("MASKLINE_WEBHOOKS_RETRY_SCHEDULE_SECS", "0,x")]);
        match apply(&mut table, &env) {
            Err(ConfigError::Env { var, message }) => {
                assert_eq!(var, "MASKLINE_WEBHOOKS_RETRY_SCHEDULE_SECS");
                assert!(message.contains("item 2"), "{message}");
            }
            other => panic!("expected Env error, got {other:?}"),
        }
        let env = env_of(&[("MASKLINE_SIP_DIGEST_ALGORITHMS", "MD5,")]);
        assert!(matches!(
            apply(&mut table, &env),
            Err(ConfigError::Env { .. })
        ));
    }

    #[test]
    fn section_that_is_not_a_table_is_an_error() {
        let mut table: Table = match toml::from_str("sip = 5\n") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let env = env_of(&[("MASKLINE_SIP_LISTEN", "127.0.0.1:5060")]);
        assert!(matches!(
            apply(&mut table, &env),
            Err(ConfigError::Env { var, .. }) if var == "MASKLINE_SIP_LISTEN"
        ));
    }
}
