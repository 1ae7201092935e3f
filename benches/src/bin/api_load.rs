//! `api-load`: `POST /v1/sessions` load against a running Maskline control
//! API. See `benches/README.md`.
//!
//! ```text
//! api-load --http 127.0.0.1:8080 --key KEY [--connections 32] [--seconds 10]
//!          [--max N] [--first-index I] [--csv FILE]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use maskline_benches::api::{self, ApiConfig};

const USAGE: &str = "api-load --http ADDR --key KEY [--connections N] [--seconds S] [--max N] \
[--first-index I] [--csv FILE]\n";

fn parse() -> Result<(ApiConfig, Option<String>), String> {
    let mut cfg = ApiConfig {
        http: "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?,
        api_key: String::new(),
        connections: 32,
        duration: Duration::from_secs(10),
        max_requests: 0,
        first_index: 0,
    };
    let mut csv = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |v: &str| format!("{flag}: cannot read `{v}`");
        match flag.as_str() {
            "--http" => {
                let v = val()?;
                cfg.http = v.parse().map_err(|_| bad(&v))?;
            }
            "--key" => cfg.api_key = val()?,
            "--connections" => {
                let v = val()?;
                cfg.connections = v.parse().map_err(|_| bad(&v))?;
            }
            "--seconds" => {
                let v = val()?;
                let s: f64 = v.parse().map_err(|_| bad(&v))?;
                cfg.duration = Duration::try_from_secs_f64(s).map_err(|_| bad(&v))?;
            }
            "--max" => {
                let v = val()?;
                cfg.max_requests = v.parse().map_err(|_| bad(&v))?;
            }
            "--first-index" => {
                let v = val()?;
                cfg.first_index = v.parse().map_err(|_| bad(&v))?;
            }
            "--csv" => csv = Some(val()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if cfg.api_key.is_empty() {
        return Err(format!("--key is required\n{USAGE}"));
    }
    Ok((cfg, csv))
}

fn main() -> ExitCode {
    let (cfg, csv) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("api-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match rt.block_on(api::run(&cfg)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("api-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = csv {
        let mut text = String::from("SEQUENTIAL\n");
        for line in &report.created {
            text.push_str(line);
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("api-load: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("{}", report.summary());
    ExitCode::SUCCESS
}
