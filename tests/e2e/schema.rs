//! Issue 6, the machine-readable contract: a property-based run of the
//! whole API with **schemathesis** (PyPI, installed by
//! `tests/install-deps.sh test`) against the `/openapi.json` that the real
//! binary serves. It must find no 5xx, no undocumented status code, no
//! undocumented content type and no response (SSE messages included) that
//! breaks its schema.
//!
//! Random ids only ever reach the 404 branch, so the instance is first given
//! real objects: a recorded call that has ended (with its recording), a
//! live recorded call, an operation, an open session and a webhook endpoint
//! on a closed loopback port (so deliveries fail and are listed). Their ids
//! go to schemathesis as dictionaries that path parameters draw from half
//! of the time; the other half are generated.
//!
//! `PUT /v1/webhook` is not generated: a generated URL (`https://0.com`)
//! would make Maskline deliver webhooks to hosts off this machine. Its
//! validation is covered by `webhooks.rs` and the unit tests.
//!
//! The run is bounded (examples per operation, an SSE read time) and
//! seeded, so CI sees the same cases every time; set
//! `MASKLINE_SCHEMA_SEED` to explore others, and `MASKLINE_E2E_KEEP` to
//! keep the instance's dir (config, schemathesis output) for a rerun by
//! hand:
//!
//! ```sh
//! schemathesis --config-file DIR/schemathesis.toml run \
//!   http://127.0.0.1:PORT/openapi.json -H 'X-API-Key: …' --checks …
//! ```

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, wait_for, CallEnds, E2eError, Maskline, Result, StartOptions, API_KEY,
    PARTY_A, PARTY_B, POOL,
};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// Overall bound of the test: start, seeding and the run.
const SCHEMA_LIMIT: Duration = Duration::from_secs(180);
/// Bound of the schemathesis process alone (killed past it).
const RUN_LIMIT: Duration = Duration::from_secs(150);
/// Test cases per operation and phase.
const MAX_EXAMPLES: u32 = 25;
/// The default seed (reproducible CI runs).
const DEFAULT_SEED: &str = "20260601";
/// The checks: every response must pass all four.
const CHECKS: &str = "not_a_server_error,status_code_conformance,\
                      content_type_conformance,response_schema_conformance";
/// Lines of schemathesis' output shown with a failure.
const TAIL_LINES: usize = 200;
/// How long a recording may take to be ready after the hangup.
const RECORDING_WITHIN: Duration = Duration::from_secs(10);

/// The ids of what [`seed`] created.
#[derive(Debug, Default)]
struct Seeded {
    sessions: Vec<String>,
    calls: Vec<String>,
    operations: Vec<String>,
}

fn str_field(v: &Value, name: &str) -> Result<String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| E2eError::Unexpected(format!("no `{name}` in {v}")))
}

/// `POST /v1/sessions` with `record` → the session's id and masked number.
async fn session(ml: &Maskline, record: bool) -> Result<(String, String)> {
    let body = json!({ "party_a": PARTY_A, "party_b": PARTY_B, "record": record });
    let s = ml
        .api()
        .expect_status(Method::POST, "/v1/sessions", Some(&body), 201)
        .await?;
    Ok((str_field(&s, "id")?, str_field(&s, "masked_number")?))
}

/// The session's live call id, once the engine reported it.
async fn live_call(ml: &Maskline, session_id: &str) -> Result<String> {
    wait_for(
        "the session's live call",
        Duration::from_secs(5),
        || async {
            let s = ml.api().get_session(session_id).await?;
            Ok(s.get("active_call_id")
                .and_then(Value::as_str)
                .map(str::to_string))
        },
    )
    .await
}

/// Objects for the generated requests to find. Returns their ids and the
/// live call, which must stay up (its peers alive) during the run.
async fn seed(ml: &Maskline) -> Result<(Seeded, maskline_e2e::BridgedCall)> {
    let mut ids = Seeded::default();

    // A recorded call that has ended, with its recording ready.
    let (ended_session, masked) = session(ml, true).await?;
    let mut call = bridge_call(ml, CallEnds::slot(ml, 0), PARTY_A, PARTY_B, &masked).await?;
    let ended_call = live_call(ml, &ended_session).await?;
    call.exchange_rtp().await?;
    call.caller_hangs_up().await?;
    drop(call);
    let path = format!("/v1/calls/{ended_call}");
    wait_for("the recording", RECORDING_WITHIN, || async {
        let c = ml
            .api()
            .expect_status(Method::GET, &path, None, 200)
            .await?;
        Ok(c.get("recording_url")
            .is_some_and(Value::is_string)
            .then_some(()))
    })
    .await?;

    // A live recorded call, and an operation on it (answering a bridged
    // call is accepted, then fails as an operation).
    let (live_session, masked) = session(ml, true).await?;
    let live = bridge_call(ml, CallEnds::slot(ml, 1), PARTY_A, PARTY_B, &masked).await?;
    let live_call_id = live_call(ml, &live_session).await?;
    let accepted = ml
        .api()
        .expect_status(
            Method::POST,
            &format!("/v1/calls/{live_call_id}/commands/answer"),
            Some(&json!({ "command_uid": "schema-seed" })),
            202,
        )
        .await?;
    ids.operations.push(str_field(&accepted, "operation_id")?);

    // An open session without calls.
    let (open_session, _) = session(ml, false).await?;

    // A webhook endpoint nobody listens on (loopback, a port of this
    // test's block that is bound for nothing over TCP).
    let url = format!("http://127.0.0.1:{}/hooks", ml.ports().peer(2));
    ml.api()
        .expect_status(
            Method::PUT,
            "/v1/webhook",
            Some(&json!({ "url": url })),
            200,
        )
        .await?;

    ids.sessions = vec![ended_session, live_session, open_session];
    ids.calls = vec![ended_call, live_call_id];
    Ok((ids, live))
}

/// A TOML array of strings (the ids are ASCII; JSON escapes are TOML's).
fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| json!(s).to_string()).collect();
    format!("[{}]", quoted.join(", "))
}

/// The schemathesis config: the seeded ids as dictionaries bound to the
/// parameters that name such objects, the SSE read limits, and the
/// operations left out.
fn config(ids: &Seeded) -> String {
    format!(
        r#"# generated by tests/e2e/schema.rs
[generation]
database = "none"

[dictionaries.sessions]
values = {sessions}

[dictionaries.calls]
values = {calls}

[dictionaries.operations]
values = {operations}

[[operations]]
include-path-regex = '^/v1/sessions/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "sessions", probability = 0.5 }} }}

[[operations]]
include-path-regex = '^/v1/calls/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "calls", probability = 0.5 }} }}

[[operations]]
include-path = "/v1/operations/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "operations", probability = 0.5 }} }}

[[operations]]
include-name = "GET /v1/calls"
parameters = {{ "query.session_id" = {{ dictionary = "sessions", probability = 0.5 }} }}

[[operations]]
include-name = "POST /v1/calls/originate"
parameters = {{ "body.session_id" = {{ dictionary = "sessions", probability = 0.5 }} }}

# Event streams never end by themselves: read each for at most 0.5 s or 3
# messages, whichever comes first, and generate fewer of them.
[[operations]]
include-path-regex = 'events$'
request-timeout = 0.5
max-stream-events = 3
generation.max-examples = 10

# Generated webhook URLs would send deliveries off this machine.
[[operations]]
include-name = "PUT /v1/webhook"
enabled = false
"#,
        sessions = toml_list(&ids.sessions),
        calls = toml_list(&ids.calls),
        operations = toml_list(&ids.operations),
    )
}

/// The last `n` lines of `path`.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The `N` of the summary's `N generated, …` line.
fn generated(output: &str) -> Option<u64> {
    output
        .lines()
        .map(str::trim)
        .find_map(|l| l.split_once(" generated")?.0.parse().ok())
}

/// `python3 -c …` running the schemathesis CLI with `args`: the module of
/// the interpreter `install-deps.sh` installed it for, whatever is on PATH.
fn schemathesis_command(args: &[String]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg("import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())")
        .args(args);
    cmd
}

/// Fails with a hint when schemathesis is not installed.
fn installed_version() -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import schemathesis; print(schemathesis.__version__)"])
        .output()
        .map_err(|e| E2eError::io("running python3", e))?;
    if !out.status.success() {
        return Err(E2eError::Unexpected(format!(
            "schemathesis is not installed for python3 (run `tests/install-deps.sh test`): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs schemathesis against `ml` with `config` to completion (bounded);
/// returns its exit status and the path of its output.
async fn run(ml: &Maskline, config: &str, seed: &str) -> Result<(ExitStatus, std::path::PathBuf)> {
    let dir = ml.dir();
    let config_path = dir.join("schemathesis.toml");
    fs::write(&config_path, config)
        .map_err(|e| E2eError::io(format!("writing {}", config_path.display()), e))?;
    let out_path = dir.join("schemathesis.out");
    let out = File::create(&out_path)
        .map_err(|e| E2eError::io(format!("creating {}", out_path.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| E2eError::io("duplicating the output handle", e))?;
    let args: Vec<String> = vec![
        "--no-color".into(),
        "--config-file".into(),
        config_path.display().to_string(),
        "run".into(),
        format!("{}/openapi.json", ml.api().base()),
        "--header".into(),
        format!("X-API-Key: {API_KEY}"),
        "--checks".into(),
        CHECKS.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.to_string(),
        "--seed".into(),
        seed.into(),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "5".into(),
        "--report".into(),
        "har".into(),
        "--report-har-path".into(),
        dir.join("schemathesis.har").display().to_string(),
    ];
    let mut child = schemathesis_command(&args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| E2eError::io("spawning python3 (schemathesis)", e))?;
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| E2eError::io("waiting for schemathesis", e))?
        {
            return Ok((status, out_path));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(E2eError::timeout(
                format!(
                    "schemathesis to finish (killed it); its output:\n{}",
                    tail(&out_path, TAIL_LINES)
                ),
                RUN_LIMIT,
            ));
        }
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn schemathesis_finds_no_5xx_and_no_response_off_the_openapi_document() -> Result<()> {
    bounded(SCHEMA_LIMIT, async {
        let version = installed_version()?;
        // Enough numbers that generated sessions rarely exhaust the pool.
        let numbers: Vec<String> = (0..40).map(|i| format!("+1555000{:04}", 100 + i)).collect();
        let mut ml = Maskline::start(StartOptions {
            numbers: POOL.iter().map(|n| n.to_string()).chain(numbers).collect(),
            ..StartOptions::default()
        })
        .await?;
        let (ids, _live) = seed(&ml).await?;
        let seed = std::env::var("MASKLINE_SCHEMA_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
        let started = Instant::now();
        let (status, out) = run(&ml, &config(&ids), &seed).await?;
        let output = tail(&out, TAIL_LINES);
        eprintln!(
            "schemathesis {version} (seed {seed}) ran {:.1?}, {status}:\n{output}",
            started.elapsed()
        );
        if !status.success() {
            return Err(E2eError::Unexpected(format!(
                "schemathesis {version} (seed {seed}) failed ({status}):\n{output}"
            )));
        }
        // A run without test cases would pass having tested nothing.
        if generated(&output).unwrap_or(0) == 0 {
            return Err(E2eError::Unexpected(format!(
                "schemathesis ran no test case:\n{output}"
            )));
        }
        ml.assert_running()?;
        Ok(())
    })
    .await
}

#[test]
fn the_generated_count_is_read_from_the_summary() {
    let summary = "Test cases:\n  956 generated, 956 passed\n\nSeed: 1\n";
    assert_eq!(generated(summary), Some(956));
    assert_eq!(generated("Test cases:\n  0 generated\n"), Some(0));
    assert_eq!(generated("no summary"), None);
    let warned =
        "  - 4 operations mostly rejected generated data\n\nTest cases:\n  7 generated, 7 passed\n";
    assert_eq!(generated(warned), Some(7));
}
