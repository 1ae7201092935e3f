//! Finding, reading and parsing the configuration.
//!
//! Order: the file (see [`resolve_path`]) or the built-in defaults, then the
//! `MASKLINE_<SECTION>_<KEY>` environment overrides (see [`crate::env`]),
//! then [`validate`](crate::validate::validate). Keys missing from the file
//! keep their defaults; a `[[trunks]]` in the file replaces the default
//! `carrier` trunk. Relative paths (`recording.dir`, a `sqlite:` URL) are
//! relative to the working directory, not to the file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use toml::Table;

use crate::env::{self, Applied};
use crate::error::{one_line, ConfigError};
use crate::model::Config;
use crate::validate::validate;

/// Variable naming the config file when `--config` is not given.
pub const CONFIG_ENV_VAR: &str = "MASKLINE_CONFIG";

/// File used when neither `--config` nor `$MASKLINE_CONFIG` is given and it
/// exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "maskline.toml";

/// A loaded, validated configuration and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it was read from; `None` means built-in defaults (plus any
    /// environment overrides).
    pub source: Option<PathBuf>,
}

/// The config file to read: `explicit` (`--config`), else
/// `$MASKLINE_CONFIG` (when non-empty), else `./maskline.toml` if it exists,
/// else `None` (built-in defaults).
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    resolve(explicit, std::env::var_os(CONFIG_ENV_VAR))
}

/// [`resolve_path`] reading `$MASKLINE_CONFIG` through `env` instead of the
/// process environment.
pub fn resolve_path_with_env(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    resolve(explicit, env(CONFIG_ENV_VAR).map(OsString::from))
}

fn resolve(explicit: Option<&Path>, from_env: Option<OsString>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = from_env.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from(DEFAULT_CONFIG_FILE);
    default.exists().then_some(default)
}

impl Config {
    /// Loads the configuration for `maskline serve` / `check-config`: the
    /// file from [`resolve_path`] (or defaults), overrides from the process
    /// environment, then validation.
    pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
        env::check_process_env_utf8()?;
        let source = resolve_path(explicit);
        load_from(source, &|var| std::env::var(var).ok())
    }

    /// [`Config::load`] with the environment read through `env` (which
    /// returns a variable's value), so tests never touch the process
    /// environment. `$MASKLINE_CONFIG` is read through `env` too.
    pub fn load_with_env(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ConfigError> {
        load_from(resolve_path_with_env(explicit, env), env)
    }

    /// Parses and validates a TOML document; no environment overrides.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Self::from_toml_str_with_env(s, &|_| None)
    }

    /// Parses a TOML document, applies the overrides `env` returns, and
    /// validates.
    pub fn from_toml_str_with_env(
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        build(parse_table(s, None)?, None, env)
    }
}

fn load_from(
    source: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let table = match &source {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                source: e,
            })?;
            parse_table(&text, Some(path))?
        }
        None => Table::new(),
    };
    let config = build(table, source.as_deref(), env)?;
    Ok(Loaded { config, source })
}

/// Overrides, typed deserialization, validation.
fn build(
    mut table: Table,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let applied = env::apply(&mut table, env)?;
    let config = deserialize(table, file, &applied)?;
    validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// TOML syntax check; errors carry line and column.
fn parse_table(text: &str, file: Option<&Path>) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| {
        let message = one_line(e.message());
        let message = match e.span().and_then(|span| line_col(text, span.start)) {
            Some((line, col)) => format!("line {line}, column {col}: {message}"),
            None => message,
        };
        ConfigError::Parse {
            path: file.map(Path::to_path_buf),
            key: None,
            message,
        }
    })
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..)?.chars().count() + 1;
    Some((line, col))
}

/// Table → [`Config`], naming the key path of the first error; an error in
/// a value set from the environment names the variable.
fn deserialize(
    table: Table,
    file: Option<&Path>,
    applied: &[Applied],
) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(table).map_err(|err| {
        let message = one_line(err.inner().message());
        let key = key_path(&err.path().to_string(), &message);
        let from_env = key.as_deref().and_then(|key| {
            applied.iter().find(|a| {
                key == a.key
                    || key
                        .strip_prefix(a.key.as_str())
                        .is_some_and(|r| r.starts_with('['))
            })
        });
        match from_env {
            Some(a) => ConfigError::Env {
                var: a.var.clone(),
                message: format!("sets {}: {message}", a.key),
            },
            None => ConfigError::Parse {
                path: file.map(Path::to_path_buf),
                key,
                message,
            },
        }
    })
}

/// The key an error is about: the path serde reached, plus the unknown key
/// itself for `deny_unknown_fields` errors when the path stops at the parent.
fn key_path(path: &str, message: &str) -> Option<String> {
    let base = (path != ".").then_some(path);
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    match (base, unknown) {
        (Some(base), Some(field)) if base == field || base.ends_with(&format!(".{field}")) => {
            Some(base.to_owned())
        }
        (Some(base), Some(field)) => Some(format!("{base}.{field}")),
        (Some(base), None) => Some(base.to_owned()),
        (None, Some(field)) => Some(field.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use super::*;
    use crate::model::DigestAlgorithm;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn parse_err(s: &str) -> (Option<String>, String) {
        match Config::from_toml_str(s) {
            Err(ConfigError::Parse { key, message, .. }) => (key, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn empty_document_is_the_defaults() {
        assert_eq!(Config::from_toml_str("").ok(), Some(Config::default()));
    }

    #[test]
    fn env_overrides_the_file() {
        let env = env_of(&[
            ("MASKLINE_SIP_LISTEN", "127.0.0.1:5070"),
            ("MASKLINE_RTP_PORT_MIN", "30000"),
            ("MASKLINE_RTP_PORT_MAX", "30999"),
            ("MASKLINE_STORE_URL", "postgres://maskline@db/maskline"),
            ("MASKLINE_WEBHOOKS_RETRY_SCHEDULE_SECS", "0,1,2"),
            ("MASKLINE_SIP_DIGEST_ALGORITHMS", "MD5,SHA-256"),
        ]);
        let toml = "[rtp]\nport_min = 40000\nport_max = 40999\nmedia_timeout_secs = 5\n";
        let config = match Config::from_toml_str_with_env(toml, &env) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.sip.listen, SocketAddr::from(([127, 0, 0, 1], 5070)));
        assert_eq!((config.rtp.port_min, config.rtp.port_max), (30000, 30999));
        assert_eq!(config.rtp.media_timeout_secs, 5, "keys not overridden stay");
        assert_eq!(config.store.url, "postgres://maskline@db/maskline");
        assert_eq!(config.webhooks.retry_schedule_secs, vec![0, 1, 2]);
        assert_eq!(
            config.sip.digest_algorithms,
            vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
        );
    }

    #[test]
    fn env_value_that_does_not_fit_names_the_variable() {
        for (var, value, key) in [
            ("MASKLINE_RTP_PORT_MIN", "70000", "rtp.port_min"),
            ("MASKLINE_SIP_LISTEN", "localhost", "sip.listen"),
            (
                "MASKLINE_SIP_DIGEST_ALGORITHMS",
                "MD5,SHA1",
                "sip.digest_algorithms",
            ),
            (
                "MASKLINE_CALLS_RING_TIMEOUT_SECS",
                "-1",
                "calls.ring_timeout_secs",
            ),
        ] {
            let env = env_of(&[(var, value)]);
            match Config::from_toml_str_with_env("", &env) {
                Err(ConfigError::Env { var: v, message }) => {
                    assert_eq!(v, var);
                    assert!(message.contains(key), "{message}");
                }
                other => panic!("{var}={value}: expected Env error, got {other:?}"),
            }
        }
    }

    #[test]
    fn env_values_are_validated_too() {
        let env = env_of(&[("MASKLINE_RTP_MEDIA_TIMEOUT_SECS", "0")]);
        match Config::from_toml_str_with_env("", &env) {
            Err(ConfigError::Invalid(problems)) => {
                assert!(problems.iter().any(|p| p.key == "rtp.media_timeout_secs"));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        assert_eq!(
            parse_err("[rtp]\nport_mni = 1\n").0.as_deref(),
            Some("rtp.port_mni")
        );
        assert_eq!(parse_err("[rpt]\n").0.as_deref(), Some("rpt"));
        let (key, message) = parse_err("[[trunks]]\nname = \"a\"\npasword = \"x\"\n");
        assert_eq!(key.as_deref(), Some("trunks[0].pasword"));
        assert!(message.contains("expected one of"), "{message}");
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            parse_err("[rtp]\nport_min = \"x\"\n").0.as_deref(),
            Some("rtp.port_min")
        );
        let toml = "[[tenants]]\nname = \"a\"\n[[tenants]]\nname = \"b\"\nnumbers = [\"+15550000001\", 5]\n";
        assert_eq!(parse_err(toml).0.as_deref(), Some("tenants[1].numbers[1]"));
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let (key, message) = parse_err("[sip]\nlisten = \n");
        assert_eq!(key, None);
        assert!(message.starts_with("line 2, column "), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé=", 6), Some((2, 3)));
        assert_eq!(line_col("é", 1), None, "not a char boundary");
    }

    #[test]
    fn resolve_prefers_explicit_then_env() {
        let env = env_of(&[(CONFIG_ENV_VAR, "/etc/maskline.toml")]);
        let explicit = Path::new("/tmp/x.toml");
        assert_eq!(
            resolve_path_with_env(Some(explicit), &env),
            Some(explicit.to_path_buf())
        );
        assert_eq!(
            resolve_path_with_env(None, &env),
            Some(PathBuf::from("/etc/maskline.toml"))
        );
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let path = Path::new("/nonexistent/maskline.toml");
        match Config::load_with_env(Some(path), &|_| None) {
            Err(ConfigError::Read { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Read error, got {other:?}"),
        }
    }

    #[test]
    fn key_path_appends_unknown_field() {
        assert_eq!(
            key_path(".", "unknown field `x`, expected y"),
            Some("x".into())
        );
        assert_eq!(
            key_path("sip", "unknown field `x`, expected y"),
            Some("sip.x".into())
        );
        assert_eq!(
            key_path("rtp.port_min", "invalid type"),
            Some("rtp.port_min".into())
        );
        assert_eq!(
            key_path("sip.x", "unknown field `x`, expected y"),
            Some("sip.x".into())
        );
        assert_eq!(
            key_path("x", "unknown field `x`, expected y"),
            Some("x".into())
        );
        assert_eq!(key_path(".", "invalid type"), None);
    }
}
