//! The `maskline` binary's one-shot commands.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::TempDir;

fn maskline(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maskline"))
        .args(args)
        .current_dir(dir)
        .env_remove("MASKLINE_CONFIG")
        .env("RUST_LOG", "error")
        .output()
        .unwrap_or_else(|e| panic!("run maskline: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_config(dir: &TempDir, extra: &str) -> String {
    let path = dir.0.join("maskline.toml");
    let body = format!(
        "[store]\nurl = \"sqlite://{}/data/maskline.db\"\n{extra}",
        dir.0.display()
    );
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

#[test]
fn check_config_reports_ok_or_the_problems() {
    let dir = TempDir::new("cli-check");
    let out = maskline(&dir.0, &["check-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "config OK (built-in defaults)");

    let path = write_config(&dir, "");
    let out = maskline(&dir.0, &["check-config", "--config", &path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("config OK ({path})"));

    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[sip]\nlisten = \"nowhere\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = maskline(
        &dir.0,
        &["check-config", "--config", &bad.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).is_empty());
    assert!(
        text(&out.stderr).contains("listen"),
        "names the key: {}",
        text(&out.stderr)
    );

    // `serve` with the same bad config fails the same way, before binding anything.
    let out = maskline(&dir.0, &["serve", "--config", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("listen"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tenant_create_and_numbers_add() {
    let dir = TempDir::new("cli-admin");
    let path = write_config(&dir, "");
    let out = maskline(&dir.0, &["--config", &path, "tenant", "create", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tenant id: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("api key: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(id.starts_with("ten_"));
    assert!(key.starts_with("mk_") && key.len() == 67, "{key}");

    let out = maskline(&dir.0, &["tenant", "create", "acme", "--config", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );

    let out = maskline(
        &dir.0,
        &[
            "numbers",
            "add",
            "acme",
            "+15550000001",
            "15550000002",
            "--config",
            &path,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("+15550000001 +15550000002"),
        "{}",
        text(&out.stdout)
    );

    let out = maskline(
        &dir.0,
        &[
            "numbers",
            "add",
            id,
            "+15550000002",
            "bogus",
            "--config",
            &path,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("+15550000002 is already in the pool of `acme`"),
        "{err}"
    );
    assert!(err.contains("`bogus` is not an E.164 number"), "{err}");

    let out = maskline(
        &dir.0,
        &[
            "numbers",
            "add",
            "nobody",
            "+15550000003",
            "--config",
            &path,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no tenant named or with id `nobody`"),
        "{}",
        text(&out.stderr)
    );
}
