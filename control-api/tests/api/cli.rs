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
        "[store]\nurl = \"{}\"\n{extra}",
        crate::backend::store_url(&dir.0)
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

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in {stdout}"))
}

async fn key_works(dir: &TempDir, key: &str) -> bool {
    let url = crate::backend::store_url(&dir.0);
    let store = maskline::store::Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = store
        .pool()
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let found =
        maskline::store::tenants::find_by_key_hash(&mut c, &maskline::util::ids::hash_api_key(key))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    drop(c);
    store.close().await;
    found.is_some()
}

#[tokio::test]
async fn key_create_and_revoke() {
    let dir = TempDir::new("cli-keys");
    let path = write_config(&dir, "");
    let out = maskline(&dir.0, &["--config", &path, "tenant", "create", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first_key = line(&text(&out.stdout), "api key: ").to_string();

    let out = maskline(&dir.0, &["--config", &path, "key", "create", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = line(&stdout, "key id: ").to_string();
    let key = line(&stdout, "api key: ").to_string();
    assert!(id.starts_with("key_") && id.len() == 28, "{id}");
    assert!(key.starts_with("mk_") && key.len() == 67, "{key}");
    assert_ne!(key, first_key);
    assert!(key_works(&dir, &key).await);

    let fails = |args: &[&str], needle: &str| {
        let mut all = vec!["--config", &path, "key"];
        all.extend_from_slice(args);
        let out = maskline(&dir.0, &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fails(&["create", "nobody"], "no tenant named or with id `nobody`");
    fails(&["revoke", "abc"], "is not a key id");
    fails(&["revoke", "key_"], "is not a key id");
    fails(
        &["revoke", "key_zzzzzzzzzz"],
        "no API key with id `key_zzzzzzzzzz`",
    );
    fails(&["revoke", "mk_0000"], "no API key");

    // A unique prefix of the id is enough.
    let prefix = &id[..14];
    let out = maskline(&dir.0, &["--config", &path, "key", "revoke", prefix]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&id), "{}", text(&out.stdout));
    assert!(!key_works(&dir, &key).await, "revoked");
    assert!(
        key_works(&dir, &first_key).await,
        "the other key still works"
    );
    fails(&["revoke", &id], "is already revoked");

    // The key itself works too.
    let out = maskline(&dir.0, &["--config", &path, "key", "revoke", &first_key]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!key_works(&dir, &first_key).await);
}

#[test]
fn numbers_remove() {
    let dir = TempDir::new("cli-numbers-rm");
    let path = write_config(&dir, "");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", path.as_str(), "numbers"];
        all.extend_from_slice(args);
        maskline(&dir.0, &all)
    };
    let out = maskline(&dir.0, &["--config", &path, "tenant", "create", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = maskline(&dir.0, &["--config", &path, "tenant", "create", "beta"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["add", "acme", "+15550000001", "+15550000002"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["add", "beta", "+15550000100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(&["remove", "acme", "15550000002"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed 1 number(s) from tenant `acme`"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("+15550000002"));

    let out = run(&[
        "remove",
        "acme",
        "+15550000001",
        "+15550000002",
        "+15550000100",
        "+15550000009",
        "bogus",
        "+15550000001",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for needle in [
        "+15550000002 was already removed from `acme`",
        "+15550000100 is not in the pool of `acme`",
        "+15550000009 is not in the pool of `acme`",
        "`bogus` is not an E.164 number",
        "+15550000001 is given twice",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let out = run(&["remove", "nobody", "+15550000001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no tenant named or with id `nobody`"));

    // All or nothing: +15550000001 is still in the pool, so removing it
    // alone works; adding a removed number back restores it.
    let out = run(&["remove", "acme", "+15550000001"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["add", "acme", "+15550000002"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("added 1 number(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["add", "acme", "+15550000002"]);
    assert_eq!(out.status.code(), Some(1), "in the pool again");
}
