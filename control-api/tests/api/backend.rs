//! Which database the tests run on.
//!
//! By default each test's store is a SQLite file in its temp dir. When
//! `MASKLINE_TEST_PG_URL` names a PostgreSQL server (a URL whose database
//! may be created from, e.g. `postgres://postgres@127.0.0.1:55432/postgres`,
//! as `tests/pg/start.sh` prints), each temp dir gets its own fresh
//! database there instead: the name derives from the dir, so a server
//! restarted on the same dir finds its data again, and [`drop_for`] (called
//! when the temp dir goes) drops it.

use std::path::Path;

use sqlx::{Connection, PgConnection};

/// The environment variable naming the PostgreSQL server.
pub const PG_URL_ENV: &str = "MASKLINE_TEST_PG_URL";

/// The server URL when the tests run on PostgreSQL.
pub fn pg_server_url() -> Option<String> {
    std::env::var(PG_URL_ENV).ok().filter(|u| !u.is_empty())
}

/// The `[store] url` for a test whose temp dir is `dir`: SQLite in the dir,
/// or a PostgreSQL database created for it.
pub fn store_url(dir: &Path) -> String {
    match pg_server_url() {
        None => format!("sqlite://{}/data/maskline.db", dir.display()),
        Some(server) => {
            let name = database_name(dir);
            run_blocking(&server, format!("CREATE DATABASE {name}"), true);
            with_database(&server, &name)
        }
    }
}

/// Drop the database [`store_url`] created for `dir`, if any (connections
/// still open to it are terminated).
pub fn drop_for(dir: &Path) {
    if let Some(server) = pg_server_url() {
        let name = database_name(dir);
        run_blocking(
            &server,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            false,
        );
    }
}

/// `ml_it_` + 16 hex digits of a hash of the dir (which is unique per test:
/// it holds the process id and a sequence number).
fn database_name(dir: &Path) -> String {
    // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ml_it_{h:016x}")
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

/// Run one statement on the server's own database, on a thread of its own
/// (callers may be inside a runtime or not). Panics on failure when
/// `must` (creating is required; dropping is best effort).
fn run_blocking(server: &str, sql: String, must: bool) {
    let server = server.to_string();
    let outcome = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut conn = PgConnection::connect(&server)
                .await
                .map_err(|e| format!("connect {server}: {e}"))?;
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await;
            // A restart of the same test asks for its database again.
            let done = match done {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
                other => other.map(|_| ()).map_err(|e| format!("{sql}: {e}")),
            };
            let _ = conn.close().await;
            done
        })
    })
    .join()
    .unwrap_or_else(|_| Err("database thread panicked".into()));
    if let Err(e) = outcome {
        if must {
            panic!("PostgreSQL test database: {e}");
        }
        eprintln!("PostgreSQL test database: {e}");
    }
}

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
    let a = database_name(Path::new("/tmp/a"));
    assert_ne!(a, database_name(Path::new("/tmp/b")));
    assert_eq!(a, database_name(Path::new("/tmp/a")));
    assert!(a.len() <= 63, "PostgreSQL identifiers");
}
