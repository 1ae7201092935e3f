//! PostgreSQL for the suite's second pass.
//!
//! When `MASKLINE_TEST_PG_URL` names a PostgreSQL server (as
//! `tests/pg/start.sh` prints, e.g. `postgres://postgres@127.0.0.1:65432/postgres`),
//! every [`crate::Maskline`] gets a fresh database of its own on it instead
//! of a SQLite file, and the cluster tests share one [`PgDatabase`] between
//! nodes. Databases are created and dropped with `psql` (installed with
//! the server), so the harness needs no database driver.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{E2eError, Result};

/// The environment variable naming the PostgreSQL server.
pub const PG_URL_ENV: &str = "MASKLINE_TEST_PG_URL";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The server URL when the suite runs on PostgreSQL.
pub fn pg_server_url() -> Option<String> {
    std::env::var(PG_URL_ENV).ok().filter(|u| !u.is_empty())
}

/// A database created for a test; dropped (connections terminated) when
/// this value is.
#[derive(Debug)]
pub struct PgDatabase {
    server: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates a fresh, empty database on the `MASKLINE_TEST_PG_URL` server;
    /// `None` when that variable is not set.
    pub fn create() -> Result<Option<PgDatabase>> {
        let Some(server) = pg_server_url() else {
            return Ok(None);
        };
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("ml_e2e_{}_{n}", std::process::id());
        psql(
            &server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        psql(&server, &format!("CREATE DATABASE {name}"))?;
        let url = with_database(&server, &name);
        Ok(Some(PgDatabase { server, name, url }))
    }

    /// The `[store] url` of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one SQL statement in this database and returns psql's unaligned,
    /// tuples-only output (`|`-separated columns, one row a line).
    pub fn query(&self, sql: &str) -> Result<String> {
        psql(&self.url, sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.server, &sql) {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` with `psql` against `url`; fails with psql's stderr.
fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| E2eError::io("running psql (apt-get install postgresql-client)", e))?;
    if !out.status.success() {
        return Err(E2eError::Unexpected(format!(
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `server` with its database path replaced by `/name` (query kept).
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base
        .get(authority_start..)
        .and_then(|rest| rest.find('/'))
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", base.get(..path_start).unwrap_or(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_the_path_only() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5/postgres", "x"),
            "postgres://u@127.0.0.1:5/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
