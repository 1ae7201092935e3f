//! Loads the files under `tests/fixtures/`: good ones give the expected
//! values, bad ones fail naming the right key.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use sip_config::{Cidr, Config, ConfigError, DigestAlgorithm, Loaded, TrunkTransport};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(name: &str) -> Result<Loaded, ConfigError> {
    Config::load_with_env(Some(&fixture(name)), &no_env)
}

fn load_ok(name: &str) -> Config {
    match load(name) {
        Ok(loaded) => {
            assert_eq!(loaded.source, Some(fixture(name)));
            loaded.config
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn cidr(s: &str) -> Cidr {
    match s.parse() {
        Ok(c) => c,
        Err(e) => panic!("{s}: {e}"),
    }
}

/// The key a parse error names, with the file checked.
fn parse_error_key(name: &str) -> (Option<String>, String) {
    match load(name) {
        Err(ConfigError::Parse { path, key, message }) => {
            assert_eq!(path, Some(fixture(name)));
            (key, message)
        }
        other => panic!("{name}: expected a parse error, got {other:?}"),
    }
}

/// The keys an invalid config names, in order.
fn invalid_keys(name: &str) -> Vec<String> {
    match load(name) {
        Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect(),
        other => panic!("{name}: expected validation problems, got {other:?}"),
    }
}

#[test]
fn full_config_loads_every_key() {
    let c = load_ok("full.toml");
    assert_eq!(c.sip.listen, SocketAddr::from(([0, 0, 0, 0], 5062)));
    assert_eq!(c.sip.public_address, ip("198.51.100.10"));
    assert_eq!(
        c.sip.digest_algorithms,
        vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
    );
    assert_eq!((c.rtp.port_min, c.rtp.port_max), (30000, 30999));
    assert_eq!(c.rtp.media_timeout_secs, 45);
    assert_eq!(c.rtp.bind_address, Some(ip("0.0.0.0")));
    assert_eq!(c.http.listen, SocketAddr::from(([127, 0, 0, 1], 8081)));
    assert_eq!(
        c.store.url,
        "postgres://maskline:secret@db.internal/maskline"
    );
    assert_eq!(
        c.recording.dir,
        PathBuf::from("/var/lib/maskline/recordings")
    );

    assert_eq!(c.trunks.len(), 2);
    let carrier = &c.trunks[0];
    assert_eq!(carrier.name, "carrier");
    assert_eq!(carrier.address, SocketAddr::from(([203, 0, 113, 5], 5080)));
    assert_eq!(carrier.transport, TrunkTransport::Udp);
    assert_eq!(
        carrier.inbound_cidrs,
        vec![cidr("203.0.113.0/24"), cidr("2001:db8::/32")]
    );
    assert_eq!(carrier.username, None);
    let backup = &c.trunks[1];
    assert_eq!(backup.transport, TrunkTransport::Tcp);
    assert_eq!(backup.inbound_cidrs, vec![cidr("203.0.113.9/32")]);
    assert_eq!(backup.username.as_deref(), Some("maskline"));
    assert_eq!(backup.password.as_deref(), Some("trunk-secret"));
    assert_eq!(backup.realm.as_deref(), Some("sip.carrier.example"));

    assert_eq!(c.tenants.len(), 2);
    let acme = &c.tenants[0];
    assert_eq!(acme.name, "acme");
    assert_eq!(
        acme.api_keys,
        vec!["acme-bootstrap-key-0123456789".to_owned()]
    );
    assert_eq!(
        acme.numbers,
        vec!["+15550000001".to_owned(), "+15550000002".to_owned()]
    );
    assert_eq!((acme.default_ttl_minutes, acme.max_ttl_minutes), (30, 120));
    assert_eq!((acme.max_concurrent_calls, acme.calls_per_second), (50, 5));
    assert_eq!(
        acme.webhook_url.as_deref(),
        Some("http://127.0.0.1:9000/hooks")
    );
    let globex = &c.tenants[1];
    assert_eq!(globex.numbers, vec!["+442071838750".to_owned()]);
    assert_eq!(
        globex.max_ttl_minutes, 240,
        "unset tenant keys keep defaults"
    );
    assert_eq!(globex.webhook_url, None);

    assert_eq!(c.calls.ring_timeout_secs, 30);
    assert_eq!(c.calls.control_timeout_secs, 5);
    assert_eq!(c.webhooks.retry_schedule_secs, vec![0, 5, 300]);
    assert_eq!(c.webhooks.timeout_secs, 10);
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].username, "+14155550101");
    assert_eq!(c.users[1].password, "bob-pw");
}

#[test]
fn minimal_config_keeps_defaults() {
    let c = load_ok("minimal.toml");
    let expected = Config {
        tenants: c.tenants.clone(),
        ..Config::default()
    };
    assert_eq!(c, expected);
    assert_eq!(c.tenants.len(), 1);
    assert_eq!(c.tenants[0].name, "dev");
    assert_eq!(c.tenants[0].default_ttl_minutes, 60);
}

#[test]
fn env_overrides_a_fixture() {
    let env = |var: &str| match var {
        "MASKLINE_HTTP_LISTEN" => Some("127.0.0.1:9090".to_owned()),
        "MASKLINE_RECORDING_DIR" => Some("/tmp/rec".to_owned()),
        _ => None,
    };
    let loaded = match Config::load_with_env(Some(&fixture("full.toml")), &env) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        loaded.config.http.listen,
        SocketAddr::from(([127, 0, 0, 1], 9090))
    );
    assert_eq!(loaded.config.recording.dir, PathBuf::from("/tmp/rec"));
    assert_eq!(loaded.config.rtp.port_min, 30000, "file values stay");
}

#[test]
fn maskline_config_variable_names_the_file() {
    let path = fixture("minimal.toml");
    let env = |var: &str| (var == "MASKLINE_CONFIG").then(|| path.display().to_string());
    match Config::load_with_env(None, &env) {
        Ok(loaded) => assert_eq!(loaded.source, Some(path.clone())),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn unknown_key_is_named() {
    let (key, message) = parse_error_key("bad_unknown_key.toml");
    assert_eq!(key.as_deref(), Some("rtp.port_mxa"));
    assert!(
        message.contains("port_max"),
        "lists the valid keys: {message}"
    );
}

#[test]
fn wrong_type_is_named() {
    assert_eq!(
        parse_error_key("wrong_type.toml").0.as_deref(),
        Some("rtp.port_min")
    );
}

#[test]
fn bad_cidr_is_named() {
    let (key, message) = parse_error_key("bad_cidr.toml");
    assert_eq!(key.as_deref(), Some("trunks[0].inbound_cidrs[1]"));
    assert!(message.contains("10.0.0.300/8"), "{message}");
}

#[test]
fn syntax_error_names_file_and_line() {
    let (key, message) = parse_error_key("bad_syntax.toml");
    assert_eq!(key, None);
    assert!(message.starts_with("line 2, "), "{message}");
    let line = match load("bad_syntax.toml") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("bad_syntax.toml loaded"),
    };
    assert!(line.contains("bad_syntax.toml: line 2, "), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
}

#[test]
fn bad_port_range_is_named() {
    assert_eq!(invalid_keys("bad_port_range.toml"), ["rtp.port_max"]);
}

#[test]
fn bad_e164_number_is_named() {
    assert_eq!(invalid_keys("bad_e164.toml"), ["tenants[0].numbers[1]"]);
}

#[test]
fn duplicate_tenant_is_named() {
    assert_eq!(invalid_keys("duplicate_tenant.toml"), ["tenants[1].name"]);
}

#[test]
fn every_problem_gets_its_own_line() {
    assert_eq!(
        invalid_keys("many_problems.toml"),
        [
            "rtp.media_timeout_secs",
            "store.url",
            "users[0].username",
            "users[0].password"
        ]
    );
    let text = match load("many_problems.toml") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("many_problems.toml loaded"),
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("rtp.media_timeout_secs: "), "{text}");
}
