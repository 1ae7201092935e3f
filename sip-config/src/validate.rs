//! Cross-field checks run after parsing; each problem names the key and the
//! fix. All problems are reported at once, not only the first.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::ConfigProblem;
use crate::model::{Config, TenantConfig, TrunkConfig, UserConfig};

/// Lowest port allowed for RTP (ports below are privileged or well known).
pub const MIN_RTP_PORT: u16 = 1024;

/// Shortest API key accepted in `tenants[i].api_keys`.
pub const MIN_API_KEY_LEN: usize = 16;

/// Checks `config`; `Err` lists every problem found.
pub fn validate(config: &Config) -> Result<(), Vec<ConfigProblem>> {
    let mut problems = Problems(Vec::new());
    check_ports(config, &mut problems);
    check_sip(config, &mut problems);
    check_store_and_recording(config, &mut problems);
    check_trunks(&config.trunks, &mut problems);
    check_tenants(&config.tenants, &mut problems);
    check_users(&config.users, &mut problems);
    check_timers(config, &mut problems);
    check_log(config, &mut problems);
    problems.0.extend(crate::cluster::check(config));
    if problems.0.is_empty() {
        Ok(())
    } else {
        Err(problems.0)
    }
}

impl Config {
    /// Runs [`validate`] on this configuration.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        validate(self)
    }
}

/// Whether `s` is an E.164 number: `+`, a non-zero digit, then 5–14 more
/// digits (6–15 digits in all).
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (6..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(key, message));
    }
}

/// Whether two bound addresses can clash (same IP, or either is a wildcard).
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

fn check_ports(config: &Config, p: &mut Problems) {
    let rtp = &config.rtp;
    let (min, max) = (rtp.port_min, rtp.port_max);
    if min < MIN_RTP_PORT {
        p.add(
            "rtp.port_min",
            format!("{min} is below {MIN_RTP_PORT}; use an unprivileged range such as 20000"),
        );
    }
    if max <= min {
        p.add(
            "rtp.port_max",
            format!("must be greater than rtp.port_min ({min}); e.g. port_min = 20000, port_max = 29999"),
        );
    } else if min.div_ceil(2).saturating_mul(2) >= max {
        p.add(
            "rtp.port_max",
            format!(
                "the range {min}–{max} holds no RTP/RTCP pair (an even port and the next one); widen it"
            ),
        );
    }
    if rtp.media_timeout_secs == 0 {
        p.add("rtp.media_timeout_secs", "must be greater than 0, e.g. 60");
    }

    let sip = config.sip.listen;
    let http = config.http.listen;
    if sip.port() != 0 && sip.port() == http.port() && overlaps(sip.ip(), http.ip()) {
        p.add(
            "http.listen",
            format!(
                "port {} is also sip.listen's (SIP listens on TCP too); pick another port, e.g. 8080",
                http.port()
            ),
        );
    }
    let rtp_ip = rtp.bind_address.unwrap_or(sip.ip());
    if sip.port() != 0 && (min..=max).contains(&sip.port()) && overlaps(sip.ip(), rtp_ip) {
        p.add(
            "sip.listen",
            format!(
                "port {} lies inside the RTP range rtp.port_min–rtp.port_max ({min}–{max}); move SIP (e.g. 5060) or the RTP range",
                sip.port()
            ),
        );
    }
}

fn check_sip(config: &Config, p: &mut Problems) {
    if config.sip.public_address.is_unspecified() {
        p.add(
            "sip.public_address",
            format!(
                "{} cannot be advertised in Via/Contact/SDP; set the address peers reach Maskline at",
                config.sip.public_address
            ),
        );
    }
    if config.sip.digest_algorithms.is_empty() {
        p.add(
            "sip.digest_algorithms",
            "must not be empty; use [\"MD5\"] (and \"SHA-256\" for RFC 8760)",
        );
    }
}

fn check_store_and_recording(config: &Config, p: &mut Problems) {
    let url = config.store.url.trim();
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|s| url.starts_with(s))
    {
        p.add(
            "store.url",
            format!(
                "`{url}` is not a database URL; use sqlite://path/to/maskline.db or postgres://user:pass@host/db"
            ),
        );
    }
    if let Some((_, query)) = url.strip_prefix("sqlite:").and_then(|r| r.split_once('?')) {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let ok = matches!(pair.split_once('='), Some(("synchronous", v))
                if v.eq_ignore_ascii_case("full") || v.eq_ignore_ascii_case("normal"));
            if !ok {
                p.add(
                    "store.url",
                    format!("unsupported SQLite option `{pair}`; only ?synchronous=full (default) or ?synchronous=normal"),
                );
            }
        }
    }
    if config.recording.dir.as_os_str().is_empty() {
        p.add(
            "recording.dir",
            "must not be empty; e.g. \"maskline-data/recordings\"",
        );
    }
}

fn check_trunks(trunks: &[TrunkConfig], p: &mut Problems) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, trunk) in trunks.iter().enumerate() {
        let name = trunk.name.trim();
        if name.is_empty() {
            p.add(format!("trunks[{i}].name"), "must not be empty");
        } else if let Some(first) = names.insert(name, i) {
            p.add(
                format!("trunks[{i}].name"),
                format!("`{name}` is also trunks[{first}]'s name; trunk names must be unique"),
            );
        }
        match (&trunk.username, &trunk.password) {
            (None, Some(_)) => p.add(
                format!("trunks[{i}].password"),
                "is set without a username; add trunks[].username",
            ),
            (Some(_), None) => p.add(
                format!("trunks[{i}].username"),
                "is set without a password; add trunks[].password",
            ),
            _ => {}
        }
        for (j, prefix) in trunk.prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                p.add(
                    format!("trunks[{i}].prefixes[{j}]"),
                    format!(
                        "`{prefix}` is not an E.164 prefix; write `+` and 1–15 digits, e.g. \"+1\""
                    ),
                );
            }
        }
        if trunk.register {
            if trunk.username.is_none() {
                p.add(
                    format!("trunks[{i}].register"),
                    "needs trunks[].username and trunks[].password",
                );
            }
            if trunk.register_expires_secs < 60 {
                p.add(
                    format!("trunks[{i}].register_expires_secs"),
                    "must be at least 60",
                );
            }
        }
    }
}

fn check_tenants(tenants: &[TenantConfig], p: &mut Problems) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut numbers: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut api_keys: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, t) in tenants.iter().enumerate() {
        let name = t.name.trim();
        if name.is_empty() {
            p.add(format!("tenants[{i}].name"), "must not be empty");
        } else if let Some(first) = names.insert(name, i) {
            p.add(
                format!("tenants[{i}].name"),
                format!("`{name}` is also tenants[{first}]'s name; tenant names must be unique"),
            );
        }
        for (j, number) in t.numbers.iter().enumerate() {
            let key = format!("tenants[{i}].numbers[{j}]");
            if !is_e164(number) {
                p.add(key, e164_message(number));
            } else if let Some((fi, fj)) = numbers.insert(number, (i, j)) {
                p.add(
                    key,
                    format!("{number} is also tenants[{fi}].numbers[{fj}]; a masked number belongs to one tenant, once"),
                );
            }
        }
        for (j, api_key) in t.api_keys.iter().enumerate() {
            let key = format!("tenants[{i}].api_keys[{j}]");
            let len = api_key.chars().count();
            if len < MIN_API_KEY_LEN {
                p.add(
                    key,
                    format!("is {len} characters; API keys need at least {MIN_API_KEY_LEN} (e.g. `openssl rand -hex 24`)"),
                );
            } else if let Some((fi, fj)) = api_keys.insert(api_key, (i, j)) {
                p.add(
                    key,
                    format!(
                        "is the same key as tenants[{fi}].api_keys[{fj}]; each key must be unique"
                    ),
                );
            }
        }
        check_tenant_limits(i, t, p);
    }
}

fn check_tenant_limits(i: usize, t: &TenantConfig, p: &mut Problems) {
    if t.default_ttl_minutes < 1 {
        p.add(
            format!("tenants[{i}].default_ttl_minutes"),
            "must be at least 1, e.g. 60",
        );
    } else if t.default_ttl_minutes > t.max_ttl_minutes {
        p.add(
            format!("tenants[{i}].default_ttl_minutes"),
            format!(
                "{} is above max_ttl_minutes ({}); lower it or raise max_ttl_minutes",
                t.default_ttl_minutes, t.max_ttl_minutes
            ),
        );
    }
    if t.max_concurrent_calls < 1 {
        p.add(
            format!("tenants[{i}].max_concurrent_calls"),
            "must be at least 1, e.g. 100",
        );
    }
    if t.calls_per_second < 1 {
        p.add(
            format!("tenants[{i}].calls_per_second"),
            "must be at least 1, e.g. 10",
        );
    }
    if let Some(url) = &t.webhook_url {
        if !is_http_url(url) {
            p.add(
                format!("tenants[{i}].webhook_url"),
                format!("`{url}` is not an http:// or https:// URL with a host"),
            );
        }
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !url.chars().any(char::is_whitespace)
    })
}

fn check_users(users: &[UserConfig], p: &mut Problems) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let username = user.username.as_str();
        if !is_e164(username) {
            p.add(format!("users[{i}].username"), e164_message(username));
        } else if let Some(first) = names.insert(username, i) {
            p.add(
                format!("users[{i}].username"),
                format!("{username} is also users[{first}]; usernames must be unique"),
            );
        }
        if user.password.is_empty() {
            p.add(format!("users[{i}].password"), "must not be empty");
        }
    }
}

fn check_timers(config: &Config, p: &mut Problems) {
    if config.calls.ring_timeout_secs == 0 {
        p.add("calls.ring_timeout_secs", "must be greater than 0, e.g. 60");
    }
    if config.calls.control_timeout_secs == 0 {
        p.add(
            "calls.control_timeout_secs",
            "must be greater than 0, e.g. 10",
        );
    }
    if config.webhooks.retry_schedule_secs.is_empty() {
        p.add(
            "webhooks.retry_schedule_secs",
            "must not be empty; e.g. [0, 5, 300, 1800, 7200, 18000, 36000]",
        );
    }
    if config.webhooks.timeout_secs == 0 {
        p.add("webhooks.timeout_secs", "must be greater than 0, e.g. 15");
    }
}

/// `log.level`: a level or `target=level` directives, comma-separated.
fn check_log(config: &Config, p: &mut Problems) {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let level = config.log.level.trim();
    let directive_ok = |d: &str| {
        let (target, lvl) = match d.rsplit_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, d),
        };
        let target_ok = target.is_none_or(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
        });
        let lvl_ok = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(lvl.trim()))
            // A bare target (`maskline_engine`) means all its events.
            || (target.is_none()
                && lvl
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')));
        target_ok && lvl_ok && !d.is_empty()
    };
    if level.is_empty() || !level.split(',').map(str::trim).all(directive_ok) {
        p.add(
            "log.level",
            format!(
                "`{level}` is not a log filter; write a level (error, warn, info, debug, trace) \
                 or directives such as `info,maskline_engine=debug`"
            ),
        );
    }
}

fn e164_message(value: &str) -> String {
    format!("`{value}` is not an E.164 number; write `+`, the country code and the number (6–15 digits), e.g. +15550000001")
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use super::*;

    fn problem_keys(config: &Config) -> Vec<String> {
        match validate(config) {
            Ok(()) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.key).collect(),
        }
    }

    fn tenant(name: &str, numbers: &[&str]) -> TenantConfig {
        TenantConfig {
            name: name.into(),
            numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            ..TenantConfig::default()
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Config::default()), Ok(()));
    }

    #[test]
    fn e164() {
        assert!(is_e164("+15550000001"));
        assert!(is_e164("+123456"));
        assert!(is_e164("+123456789012345"));
        for bad in [
            "15550000001",
            "+12345",
            "+1234567890123456",
            "+1555000000a",
            "+0123456",
            "+",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn rtp_range() {
        let mut c = Config::default();
        c.rtp.port_min = 1000;
        c.rtp.port_max = 999;
        assert_eq!(problem_keys(&c), ["rtp.port_min", "rtp.port_max"]);
        c.rtp.port_min = 20001;
        c.rtp.port_max = 20002;
        assert_eq!(problem_keys(&c), ["rtp.port_max"], "no even/odd pair");
        c.rtp.port_max = 20003;
        assert_eq!(problem_keys(&c), Vec::<String>::new());
        c.rtp.media_timeout_secs = 0;
        assert_eq!(problem_keys(&c), ["rtp.media_timeout_secs"]);
    }

    #[test]
    fn sip_and_http_ports_clash_on_overlapping_addresses() {
        let mut c = Config::default();
        c.http.listen = SocketAddr::from(([0, 0, 0, 0], 5060));
        assert_eq!(problem_keys(&c), ["http.listen"]);
        c.http.listen = SocketAddr::from(([10, 0, 0, 1], 5060));
        assert_eq!(problem_keys(&c), Vec::<String>::new());
        c.sip.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        assert_eq!(
            problem_keys(&c),
            Vec::<String>::new(),
            "port 0 = any free port"
        );
    }

    #[test]
    fn sip_port_inside_rtp_range() {
        let mut c = Config::default();
        c.sip.listen = SocketAddr::from(([127, 0, 0, 1], 25000));
        assert_eq!(problem_keys(&c), ["sip.listen"]);
        c.rtp.bind_address = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(problem_keys(&c), Vec::<String>::new());
    }

    #[test]
    fn sip_store_recording() {
        let mut c = Config::default();
        c.sip.public_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        c.sip.digest_algorithms.clear();
        c.store.url = "mysql://x".into();
        c.recording.dir = "".into();
        assert_eq!(
            problem_keys(&c),
            [
                "sip.public_address",
                "sip.digest_algorithms",
                "store.url",
                "recording.dir"
            ]
        );
        c = Config::default();
        c.store.url = "sqlite://x.db?synchronous=off".into();
        assert_eq!(problem_keys(&c), ["store.url"]);
        for url in [
            "sqlite::memory:",
            "sqlite://x.db?synchronous=normal",
            "postgres://a@b/c",
            "postgresql://a@b/c",
        ] {
            c = Config::default();
            c.store.url = url.into();
            assert_eq!(problem_keys(&c), Vec::<String>::new(), "{url}");
        }
    }

    #[test]
    fn trunks() {
        let mut c = Config::default();
        let mut second = TrunkConfig {
            password: Some("x".into()),
            ..TrunkConfig::default()
        };
        let third = TrunkConfig {
            name: " ".into(),
            username: Some("u".into()),
            ..TrunkConfig::default()
        };
        c.trunks = vec![TrunkConfig::default(), second.clone(), third];
        assert_eq!(
            problem_keys(&c),
            [
                "trunks[1].name",
                "trunks[1].password",
                "trunks[2].name",
                "trunks[2].username"
            ]
        );
        second.name = "backup".into();
        second.username = Some("u".into());
        c.trunks = vec![TrunkConfig::default(), second];
        assert_eq!(problem_keys(&c), Vec::<String>::new());
    }

    #[test]
    fn tenant_names_and_numbers() {
        let c = Config {
            tenants: vec![
                tenant("acme", &["+15550000001", "15550000002", "+15550000001"]),
                tenant("acme", &["+15550000003"]),
                tenant("", &["+15550000003"]),
            ],
            ..Config::default()
        };
        assert_eq!(
            problem_keys(&c),
            [
                "tenants[0].numbers[1]",
                "tenants[0].numbers[2]",
                "tenants[1].name",
                "tenants[2].name",
                "tenants[2].numbers[0]"
            ]
        );
    }

    #[test]
    fn tenant_limits_and_keys() {
        let mut c = Config::default();
        let mut t = tenant("acme", &[]);
        t.default_ttl_minutes = 300;
        t.max_concurrent_calls = 0;
        t.calls_per_second = 0;
        t.webhook_url = Some("ftp://x".into());
        t.api_keys = vec!["short".into(), "k".repeat(16), "k".repeat(16)];
        c.tenants = vec![t.clone()];
        assert_eq!(
            problem_keys(&c),
            [
                "tenants[0].api_keys[0]",
                "tenants[0].api_keys[2]",
                "tenants[0].default_ttl_minutes",
                "tenants[0].max_concurrent_calls",
                "tenants[0].calls_per_second",
                "tenants[0].webhook_url"
            ]
        );
        t.default_ttl_minutes = 0;
        t.max_concurrent_calls = 1;
        t.calls_per_second = 1;
        t.webhook_url = Some("https://hooks.example.com/x".into());
        t.api_keys = vec!["k".repeat(16)];
        c.tenants = vec![t];
        assert_eq!(problem_keys(&c), ["tenants[0].default_ttl_minutes"]);
    }

    #[test]
    fn api_key_is_not_echoed() {
        let mut c = Config::default();
        let mut t = tenant("acme", &[]);
        t.api_keys = vec!["secret-ish".into()];
        c.tenants = vec![t];
        let problems = validate(&c).err().unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert!(problems.iter().all(|p| !p.message.contains("secret-ish")));
    }

    #[test]
    fn webhook_urls() {
        assert!(is_http_url("http://127.0.0.1:9000/hooks"));
        assert!(is_http_url("https://example.com"));
        for bad in [
            "http://",
            "https:///x",
            "ftp://x",
            "example.com",
            "http://a b",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn users() {
        let mut c = Config::default();
        let user = |u: &str, pw: &str| UserConfig {
            username: u.into(),
            password: pw.into(),
        };
        c.users = vec![
            user("+14155550101", "pw"),
            user("+14155550101", "pw"),
            user("alice", ""),
        ];
        assert_eq!(
            problem_keys(&c),
            [
                "users[1].username",
                "users[2].username",
                "users[2].password"
            ]
        );
    }

    #[test]
    fn timers() {
        let mut c = Config::default();
        c.calls.ring_timeout_secs = 0;
        c.calls.control_timeout_secs = 0;
        c.webhooks.retry_schedule_secs.clear();
        c.webhooks.timeout_secs = 0;
        assert_eq!(
            problem_keys(&c),
            [
                "calls.ring_timeout_secs",
                "calls.control_timeout_secs",
                "webhooks.retry_schedule_secs",
                "webhooks.timeout_secs"
            ]
        );
    }

    #[test]
    fn log_level_filters() {
        let mut c = Config::default();
        for ok in [
            "info",
            "WARN",
            "info,maskline_engine=debug",
            "maskline=trace, tower_http=off",
            "maskline_engine",
        ] {
            c.log.level = ok.into();
            assert_eq!(problem_keys(&c), Vec::<String>::new(), "{ok}");
        }
        for bad in [
            "",
            "very loud",
            "info,=debug",
            "a=b=c",
            "x=verbose",
            "info;drop",
        ] {
            c.log.level = bad.into();
            assert_eq!(problem_keys(&c), ["log.level"], "{bad:?}");
        }
    }
}
