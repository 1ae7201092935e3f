//! What can go wrong while loading the configuration.
//!
//! Every error displays as one line per problem, naming the key (and the
//! file when there is one), so `maskline check-config` and `maskline serve`
//! can print it as is.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found by [`validate`](crate::validate::validate): the key and
/// what to do about it. Displays as `key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Key path such as `rtp.port_min` or `tenants[0].numbers[1]`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema (unknown key, wrong
    /// type, bad value).
    #[error("{}", parse_line(path.as_deref(), key.as_deref(), message))]
    Parse {
        /// The file, when the TOML came from one.
        path: Option<PathBuf>,
        /// Key path such as `rtp.port_min`, when known.
        key: Option<String>,
        /// What is wrong (one line; syntax errors carry line and column).
        message: String,
    },
    /// A `MASKLINE_*` environment variable does not parse.
    #[error("{var}: {message}")]
    Env {
        /// The variable, e.g. `MASKLINE_RTP_PORT_MIN`.
        var: String,
        /// What is wrong, naming the key it overrides.
        message: String,
    },
    /// The configuration parsed but is not usable; one problem per line.
    #[error("{}", problem_lines(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn parse_line(path: Option<&Path>, key: Option<&str>, message: &str) -> String {
    match (path, key) {
        (Some(path), Some(key)) => format!("{}: {key}: {message}", path.display()),
        (Some(path), None) => format!("{}: {message}", path.display()),
        (None, Some(key)) => format!("{key}: {message}"),
        (None, None) => message.to_owned(),
    }
}

fn problem_lines(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ConfigProblem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collapses a possibly multi-line message into one line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_displays_one_line_per_problem() {
        let err = ConfigError::Invalid(vec![
            ConfigProblem::new("rtp.port_max", "must be greater"),
            ConfigProblem::new("tenants[0].name", "must not be empty"),
        ]);
        assert_eq!(
            err.to_string(),
            "rtp.port_max: must be greater\ntenants[0].name: must not be empty"
        );
    }

    #[test]
    fn parse_names_file_and_key() {
        let err = ConfigError::Parse {
            path: Some(PathBuf::from("maskline.toml")),
            key: Some("rtp.port_min".into()),
            message: "invalid type".into(),
        };
        assert_eq!(err.to_string(), "maskline.toml: rtp.port_min: invalid type");
        let err = ConfigError::Parse {
            path: None,
            key: None,
            message: "line 1, column 2: bad".into(),
        };
        assert_eq!(err.to_string(), "line 1, column 2: bad");
    }

    #[test]
    fn read_and_env_are_one_line() {
        let err = ConfigError::Read {
            path: PathBuf::from("/nope.toml"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        };
        assert_eq!(
            err.to_string(),
            "/nope.toml: cannot read the config file: not found"
        );
        let err = ConfigError::Env {
            var: "MASKLINE_RTP_PORT_MIN".into(),
            message: "sets rtp.port_min: expected an integer".into(),
        };
        assert_eq!(
            err.to_string(),
            "MASKLINE_RTP_PORT_MIN: sets rtp.port_min: expected an integer"
        );
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(
            one_line("invalid key\n  expected `=`\n"),
            "invalid key; expected `=`"
        );
    }
}
