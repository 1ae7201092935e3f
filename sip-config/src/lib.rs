//! Maskline configuration.
//!
//! One TOML file (see `CONTRACT.md`), every key of the table sections
//! overridable by an environment variable `MASKLINE_<SECTION>_<KEY>` (e.g.
//! `MASKLINE_SIP_LISTEN`), validated at start with one error line per
//! problem naming the key.
//!
//! ```
//! let config = sip_config::Config::from_toml_str("[rtp]\nport_min = 30000\nport_max = 30999\n")?;
//! assert_eq!(config.rtp.port_min, 30000);
//! # Ok::<(), sip_config::ConfigError>(())
//! ```
//!
//! # Layout
//! - [`model`]: the typed configuration and its built-in defaults.
//! - [`load`]: file resolution, TOML parsing, turning errors into key paths.
//! - [`env`]: the `MASKLINE_*` environment overrides.
//! - [`validate`]: cross-field checks that name the key and the fix.
//! - [`cluster`]: `[cluster]`, several nodes on one PostgreSQL.
//! - [`error`]: [`ConfigError`] and [`ConfigProblem`].

#![warn(missing_docs)]

pub mod cluster;
pub mod env;
pub mod error;
pub mod load;
pub mod model;
pub mod validate;

pub use cluster::ClusterConfig;
pub use error::{ConfigError, ConfigProblem};
pub use load::{resolve_path, resolve_path_with_env, Loaded, CONFIG_ENV_VAR, DEFAULT_CONFIG_FILE};
pub use model::*;
pub use validate::{is_e164, validate};
