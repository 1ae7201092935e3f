//! Persistence: one [`Store`] over an `sqlx::AnyPool`, so the same SQL
//! (`$1`-style placeholders, `RETURNING`, `ON CONFLICT`) runs on the embedded
//! SQLite default and on PostgreSQL. Times are INTEGER unix milliseconds.
//!
//! Each submodule owns one table (or two closely tied ones) and exposes
//! functions taking `&mut AnyConnection`, so services compose them inside
//! one transaction (`let mut tx = store.begin().await?; …(&mut tx)…`).
//!
//! A clustered node ([`Store::open_node`], PostgreSQL only) sets
//! `maskline.node_id` on each of its connections: the `node_id` column
//! defaults of `calls` and `operations` record which node owns a row, and
//! start-up recovery touches only this node's rows ([`current_node_sql`]).

pub mod api_keys;
pub mod call_queue;
pub mod calls;
pub mod cluster_locks;
pub mod events;
pub mod idempotency;
pub mod listing;
pub mod nodes;
pub mod numbers;
pub mod operations;
pub mod registrations;
pub mod sessions;
pub mod tenants;
pub mod webhook_deliveries;
pub mod webhook_endpoints;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Transaction};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Where the data directory is when the store is not a SQLite file.
pub const DEFAULT_DATA_DIR: &str = "maskline-data";

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (the default).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `[store] url` is neither `sqlite:` nor `postgres:`.
    #[error("store.url: unsupported scheme in `{0}` (expected sqlite://PATH or postgres://…)")]
    UnsupportedUrl(String),
    /// The SQLite file's directory could not be created.
    #[error("store.url: cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option in a `sqlite://…?…` URL other than `synchronous=full|normal`.
    #[error(
        "store.url: unsupported SQLite option `{0}` (only synchronous=full or synchronous=normal)"
    )]
    SqliteOption(String),
    /// The SQLite path is not valid UTF-8.
    #[error("store.url: path {0} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// Migrations failed.
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value is not what the schema promises (e.g. bad JSON).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A node id was given for a store that is not PostgreSQL.
    #[error("cluster.node_id: a cluster needs [store] url = postgres://…")]
    ClusterNeedsPostgres,
}

/// `$first, $first+1, …`: `count` numbered placeholders.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2, …), ($k+1, …), …`: placeholders for a multi-row `VALUES` of
/// `rows` rows of `columns` columns each.
pub(crate) fn values_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The database pool plus what the rest of the program needs to know about it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    data_dir: PathBuf,
}

impl Store {
    /// Connect to `url` (`sqlite://PATH` or `postgres://…`) and run the
    /// embedded migrations.
    ///
    /// SQLite: the file's directory is created, the file opened with
    /// `mode=rwc`, WAL journal, `synchronous=FULL`, `busy_timeout` 5 s and
    /// foreign keys on.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_node(url, None).await
    }

    /// [`Store::open`] for the cluster node `node_id` (PostgreSQL only):
    /// every connection sets `maskline.node_id`, which the `node_id`
    /// column defaults read. `None`: a single node, as [`Store::open`].
    pub async fn open_node(url: &str, node_id: Option<&str>) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let store = if let Some(rest) = strip_sqlite_scheme(url) {
            if node_id.is_some() {
                return Err(StoreError::ClusterNeedsPostgres);
            }
            open_sqlite(rest).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let node = node_id.map(str::to_string);
            let pool = AnyPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(move |conn, _| {
                    let node = node.clone();
                    Box::pin(async move {
                        if let Some(node) = node {
                            sqlx::query("SELECT set_config('maskline.node_id', $1, false)")
                                .bind(node)
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok(())
                    })
                })
                .connect(url)
                .await?;
            Store {
                pool,
                backend: Backend::Postgres,
                data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            }
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        match store.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&store.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&store.pool).await?,
        }
        Ok(store)
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The data directory: the SQLite file's directory, else `maskline-data`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Start a (write) transaction.
    ///
    /// SQLite: `BEGIN IMMEDIATE` takes the write lock up front, waiting up
    /// to `busy_timeout`; a deferred transaction that reads first could
    /// instead fail at once with `SQLITE_BUSY` when another connection
    /// commits between its read and its write.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Close every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether `conn` talks to PostgreSQL (for the few statements whose best
/// form differs: row locks, advisory locks, notifications).
pub fn is_postgres(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// SQL for the id of the node `conn` belongs to: the connection's
/// `maskline.node_id` on PostgreSQL (NULL on a single node), `NULL` on
/// SQLite. Rows with `node_id IS NULL OR node_id = <this>` are this node's.
pub fn current_node_sql(conn: &sqlx::AnyConnection) -> &'static str {
    if is_postgres(conn) {
        "NULLIF(current_setting('maskline.node_id', true), '')"
    } else {
        "NULL"
    }
}

fn strip_sqlite_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = url.get(scheme_end + 3..at).unwrap_or("");
            let user = userinfo.split(':').next().unwrap_or("");
            format!(
                "{}{user}:***{}",
                url.get(..scheme_end + 3).unwrap_or(""),
                url.get(at..).unwrap_or("")
            )
        }
        _ => url.to_string(),
    }
}

/// Percent-encode a filesystem path for a `sqlite://` URL.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn open_sqlite(rest: &str) -> Result<Store, StoreError> {
    let (path_part, query) = rest.split_once('?').unwrap_or((rest, ""));
    let sync = synchronous_from(query)?;
    if path_part.is_empty() || path_part == ":memory:" {
        // One connection, or every pooled connection would see its own database.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| Box::pin(async move { sqlite_pragmas(conn, sync).await }))
            .connect("sqlite::memory:")
            .await?;
        return Ok(Store {
            pool,
            backend: Backend::Sqlite,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        });
    }
    let path = PathBuf::from(path_part);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    // Absolute path: a relative `sqlite://dir/file` would otherwise pass
    // through URL parsing with `dir` taken (and lower-cased) as a host.
    let dir = std::fs::canonicalize(&dir).map_err(|source| StoreError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let file = dir.join(path.file_name().unwrap_or_default());
    let file_str = file
        .to_str()
        .ok_or_else(|| StoreError::NonUtf8Path(file.clone()))?;
    let url = format!("sqlite://{}?mode=rwc", encode_path(file_str));
    let options: AnyConnectOptions = url.parse()?;
    let options = options.disable_statement_logging();

    // Switching to WAL needs an exclusive lock that busy_timeout does not wait
    // for, so do it once on a dedicated connection before the pool exists.
    // WAL is persistent in the file; later connections inherit it.
    {
        let mut conn = options.connect().await?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| Box::pin(async move { sqlite_pragmas(conn, sync).await }))
        .connect_with(options)
        .await?;
    Ok(Store {
        pool,
        backend: Backend::Sqlite,
        data_dir: dir,
    })
}

/// `?synchronous=full|normal` of a `sqlite://` URL (default `full`).
///
/// - `full` (default): every commit is fsynced (WAL included) before it
///   returns, so a session acknowledged with 201 survives a crash or a
///   power loss. The cost is one fsync per write (about 125 session
///   creates per second on the benchmark machine's disk).
/// - `normal`: in WAL mode commits survive a process crash (`kill -9`) but
///   the last ones can be lost on a power cut or kernel panic; writes no
///   longer wait for the disk. For deployments where the creates per
///   second matter more (see BENCHMARKS.md).
fn synchronous_from(query: &str) -> Result<&'static str, StoreError> {
    let mut sync = "PRAGMA synchronous = FULL";
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        sync = match pair.split_once('=') {
            Some(("synchronous", v)) if v.eq_ignore_ascii_case("full") => {
                "PRAGMA synchronous = FULL"
            }
            Some(("synchronous", v)) if v.eq_ignore_ascii_case("normal") => {
                "PRAGMA synchronous = NORMAL"
            }
            _ => return Err(StoreError::SqliteOption(pair.to_string())),
        };
    }
    Ok(sync)
}

/// Per-connection SQLite settings; `sync` from [`synchronous_from`].
async fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    sync: &'static str,
) -> Result<(), sqlx::Error> {
    for pragma in [
        sync,
        "PRAGMA busy_timeout = 5000",
        "PRAGMA foreign_keys = ON",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! A throwaway store per test: SQLite in a unique temp directory, or,
    //! when `MASKLINE_TEST_PG_URL` names a PostgreSQL server (the suite's
    //! second pass), a fresh database on it named after that directory.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::{Connection, PgConnection};

    use super::Store;

    /// A temp directory (and its PostgreSQL database, if any) removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        /// A fresh, empty directory.
        pub fn new(tag: &str) -> TempDir {
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("maskline-unit-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if let Some(server) = pg_server_url() {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db_name(&self.0));
                // Off the runtime: drop may run inside a test's runtime.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(pg_execute(&server, &sql));
                    }
                })
                .join();
            }
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The PostgreSQL server of the second pass, if this is it.
    pub fn pg_server_url() -> Option<String> {
        std::env::var("MASKLINE_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }

    fn db_name(dir: &Path) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in dir.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("ml_unit_{h:016x}")
    }

    async fn pg_execute(server: &str, sql: &str) -> bool {
        let Ok(mut conn) = PgConnection::connect(server).await else {
            return false;
        };
        let ok = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .is_ok();
        let _ = conn.close().await;
        ok
    }

    /// The store of `dir`: on PostgreSQL when `MASKLINE_TEST_PG_URL` is
    /// set (the same database each time for the same dir), else SQLite in
    /// `dir/db/maskline.db`.
    pub async fn store(dir: &TempDir) -> Store {
        let Some(server) = pg_server_url() else {
            return sqlite_store(dir).await;
        };
        let name = db_name(&dir.0);
        // Fails harmlessly when an earlier call for this dir created it.
        pg_execute(&server, &format!("CREATE DATABASE {name}")).await;
        let url = with_database(&server, &name);
        Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
    }

    /// `server` with its database path replaced by `/name`.
    fn with_database(server: &str, name: &str) -> String {
        let base = server.split('?').next().unwrap_or(server);
        let authority = base.find("://").map_or(0, |i| i + 3);
        let path = base
            .get(authority..)
            .and_then(|rest| rest.find('/'))
            .map_or(base.len(), |i| authority + i);
        format!("{}/{name}", base.get(..path).unwrap_or(base))
    }

    /// A SQLite store on `dir/db/maskline.db`, whatever the pass.
    pub async fn sqlite_store(dir: &TempDir) -> Store {
        let url = format!("sqlite://{}/db/maskline.db", dir.0.display());
        Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{sqlite_store, TempDir};
    use super::*;

    #[test]
    fn sqlite_synchronous_option() {
        assert_eq!(synchronous_from("").ok(), Some("PRAGMA synchronous = FULL"));
        assert_eq!(
            synchronous_from("synchronous=normal").ok(),
            Some("PRAGMA synchronous = NORMAL")
        );
        assert_eq!(
            synchronous_from("synchronous=FULL").ok(),
            Some("PRAGMA synchronous = FULL")
        );
        assert!(matches!(
            synchronous_from("synchronous=off"),
            Err(StoreError::SqliteOption(_))
        ));
        assert!(matches!(
            synchronous_from("cache=shared"),
            Err(StoreError::SqliteOption(_))
        ));
    }

    #[tokio::test]
    async fn opens_sqlite_creating_dir_in_wal_mode_with_pragmas() {
        let dir = TempDir::new("open");
        let s = sqlite_store(&dir).await;
        assert_eq!(s.backend(), Backend::Sqlite);
        assert!(dir.0.join("db/maskline.db").exists());
        assert_eq!(
            s.data_dir(),
            std::fs::canonicalize(dir.0.join("db")).unwrap_or_default()
        );
        let mut conn = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_default();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_default();
        assert_eq!(sync, 2, "FULL");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_default();
        assert_eq!(fk, 1);
        drop(conn);
        s.close().await;
        // Reopening runs the (already applied) migrations again without error.
        let again = sqlite_store(&dir).await;
        again.close().await;
    }

    #[tokio::test]
    async fn rejects_unknown_scheme_without_leaking_password() {
        let err = Store::open("mysql://u:secret@h/db")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unsupported scheme"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn encodes_special_path_characters() {
        assert_eq!(
            encode_path("/tmp/a b/c?d#e%.db"),
            "/tmp/a%20b/c%3Fd%23e%25.db"
        );
    }
}
