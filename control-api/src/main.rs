//! The `maskline` binary: `serve`, `check-config`, `tenant create`,
//! `key create|revoke`, `numbers add|remove`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use maskline::service::admin;
use maskline::store::Store;
use maskline::util::time::Clock;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "maskline", version, about = "Phone-number masking B2BUA")]
struct Cli {
    /// Config file (default: $MASKLINE_CONFIG, then ./maskline.toml, then built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run SIP + RTP + HTTP.
    Serve,
    /// Load and validate the configuration, then exit.
    CheckConfig,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCmd,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// Manage masked-number pools.
    Numbers {
        #[command(subcommand)]
        command: NumbersCmd,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Create an API key for a tenant; prints its id and the key (shown once).
    Create {
        /// Tenant name or id.
        tenant: String,
    },
    /// Revoke an API key: requests with it get 401 from then on.
    Revoke {
        /// The key id (key_…), a unique prefix of it, or the key itself (mk_…).
        #[arg(value_name = "KEY_PREFIX_OR_ID")]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCmd {
    /// Create a tenant; prints its id and a new API key.
    Create {
        /// Tenant name (A–Z a–z 0–9 . _ -).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum NumbersCmd {
    /// Add masked numbers to a tenant's pool.
    Add {
        /// Tenant name or id.
        tenant: String,
        /// E.164 numbers, e.g. +15550000001.
        #[arg(required = true, value_name = "E164")]
        numbers: Vec<String>,
    },
    /// Take masked numbers out of a tenant's pool (not while a session holds one).
    Remove {
        /// Tenant name or id.
        tenant: String,
        /// E.164 numbers, e.g. +15550000001.
        #[arg(required = true, value_name = "E164")]
        numbers: Vec<String>,
    },
}

fn main() -> ExitCode {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        runtime.worker_threads(runtime_threads());
    }
    match runtime.build() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Threads of the runtime that runs SIP signalling, the call actors and
/// the HTTP API: half the cores, at least one (`TOKIO_WORKER_THREADS`
/// overrides). The RTP relay has a worker thread per core of its own and
/// SQLite a thread per connection. On a 2-core machine one runtime thread
/// carried 3000 calls/s through the B2BUA with 0.07 % failed at 365 µs of
/// CPU per call, where two threads failed 4.9 % at 518 µs: work stealing
/// between two threads costs more wake-ups than it saves.
fn runtime_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 2)
        .max(1)
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match sip_config::Config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(matches!(cli.command, Cmd::Serve), &loaded.config.log);
    let result = match cli.command {
        Cmd::CheckConfig => {
            println!("config OK ({})", describe(loaded.source.as_deref()));
            Ok(())
        }
        Cmd::Serve => {
            tracing::info!(config = %describe(loaded.source.as_deref()), "starting");
            maskline::serve(loaded.config)
                .await
                .map_err(anyhow::Error::from)
        }
        Cmd::Tenant {
            command: TenantCmd::Create { name },
        } => tenant_create(&loaded.config, &name).await,
        Cmd::Numbers {
            command: NumbersCmd::Add { tenant, numbers },
        } => numbers_add(&loaded.config, &tenant, &numbers).await,
        Cmd::Numbers {
            command: NumbersCmd::Remove { tenant, numbers },
        } => numbers_remove(&loaded.config, &tenant, &numbers).await,
        Cmd::Key {
            command: KeyCmd::Create { tenant },
        } => key_create(&loaded.config, &tenant).await,
        Cmd::Key {
            command: KeyCmd::Revoke { key },
        } => key_revoke(&loaded.config, &key).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, as `[log] format` says (text lines or one JSON
/// object per line), filtered by `RUST_LOG` when set, else by `[log]
/// level` for `serve` and `warn` for the admin commands.
fn init_logging(serve: bool, log: &sip_config::LogConfig) {
    let default = if serve { log.level.as_str() } else { "warn" };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        sip_config::LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        sip_config::LogFormat::Text => fmt.init(),
    }
}

fn describe(source: Option<&Path>) -> String {
    source.map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    )
}

async fn open_store(config: &sip_config::Config) -> anyhow::Result<Store> {
    Store::open(&config.store.url)
        .await
        .context("cannot open the store")
}

async fn tenant_create(config: &sip_config::Config, name: &str) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let res = admin::create_tenant(&store, name, &Clock::system()).await;
    store.close().await;
    let (tenant, key) = res?;
    println!("tenant id: {}", tenant.id);
    println!("api key: {key}");
    Ok(())
}

async fn numbers_add(
    config: &sip_config::Config,
    tenant: &str,
    numbers: &[String],
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let res = admin::add_numbers(&store, tenant, numbers, &Clock::system()).await;
    store.close().await;
    let (tenant, added) = res?;
    println!(
        "added {} number(s) to tenant `{}` ({}): {}",
        added.len(),
        tenant.name,
        tenant.id,
        added.join(" ")
    );
    Ok(())
}

async fn numbers_remove(
    config: &sip_config::Config,
    tenant: &str,
    numbers: &[String],
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let res = admin::remove_numbers(&store, tenant, numbers, &Clock::system()).await;
    store.close().await;
    let (tenant, removed) = res?;
    println!(
        "removed {} number(s) from tenant `{}` ({}): {}",
        removed.len(),
        tenant.name,
        tenant.id,
        removed.join(" ")
    );
    Ok(())
}

async fn key_create(config: &sip_config::Config, tenant: &str) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let res = admin::create_key(&store, tenant, &Clock::system()).await;
    store.close().await;
    let (tenant, id, key) = res?;
    println!("tenant: {} ({})", tenant.name, tenant.id);
    println!("key id: {id}");
    println!("api key: {key}");
    Ok(())
}

async fn key_revoke(config: &sip_config::Config, key: &str) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let res = admin::revoke_key(&store, key, &Clock::system()).await;
    store.close().await;
    let row = res?;
    println!("revoked API key {} of tenant {}", row.id, row.tenant_id);
    Ok(())
}
