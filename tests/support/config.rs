//! The configuration a test instance of Maskline runs with.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::ports::PortBlock;

/// The tenant's bootstrap API key.
pub const API_KEY: &str = "test-key-0123456789abcdef";
/// The tenant's pool of masked numbers.
pub const POOL: [&str; 4] = [
    "+15550000001",
    "+15550000002",
    "+15550000003",
    "+15550000004",
];
/// Party A's real number.
pub const PARTY_A: &str = "+14155550101";
/// Party B's real number.
pub const PARTY_B: &str = "+14155550202";
/// A number that is party to no session.
pub const STRANGER: &str = "+14155550303";

/// What a test may change in the generated config.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The tenant's masked numbers.
    pub numbers: Vec<String>,
    /// The trunk's `inbound_cidrs`.
    pub inbound_cidrs: Vec<String>,
    /// `[calls] ring_timeout_secs`.
    pub ring_timeout_secs: u64,
    /// Appended verbatim to the generated TOML.
    pub extra_toml: String,
    /// The trunk's `transport` (`udp` or `tcp`).
    pub trunk_transport: String,
    /// The trunk's digest `username` and `password`, for when it challenges.
    pub trunk_credentials: Option<(String, String)>,
    /// `[[users]]`: softphones allowed to REGISTER, as (username, password).
    pub users: Vec<(String, String)>,
    /// `[rtp] media_timeout_secs` (Maskline's default when `None`).
    pub media_timeout_secs: Option<u64>,
    /// `[[trunks]]` to render instead of the one `carrier` trunk on the
    /// block's trunk port (when empty, that trunk is rendered as before).
    /// Each gets `trunk_transport` and `inbound_cidrs`.
    pub trunks: Vec<TrunkSpec>,
    /// `[store] url`; `None`: a SQLite file in the instance's dir, or a
    /// fresh PostgreSQL database when `MASKLINE_TEST_PG_URL` is set (see
    /// [`crate::pg`]). Nodes of one cluster share a database this way.
    pub store_url: Option<String>,
}

/// One `[[trunks]]` entry for tests with several trunks, keep-alive or
/// outbound registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    /// `name`.
    pub name: String,
    /// `address`: where outbound legs (and pings, REGISTERs) go.
    pub address: SocketAddr,
    /// `prefixes`: E.164 prefixes it carries (empty: any number).
    pub prefixes: Vec<String>,
    /// `priority`: lower is tried first.
    pub priority: u32,
    /// `options_interval_secs` (0: no keep-alive).
    pub options_interval_secs: u64,
    /// `register`: register Maskline at this trunk.
    pub register: bool,
    /// `register_expires_secs` (Maskline's default when `None`).
    pub register_expires_secs: Option<u64>,
    /// `username` and `password`.
    pub credentials: Option<(String, String)>,
}

impl TrunkSpec {
    /// A trunk `name` at `address` with every other key at its default.
    pub fn new(name: &str, address: SocketAddr) -> TrunkSpec {
        TrunkSpec {
            name: name.to_string(),
            address,
            prefixes: Vec::new(),
            priority: 0,
            options_interval_secs: 0,
            register: false,
            register_expires_secs: None,
            credentials: None,
        }
    }

    /// The `[[trunks]]` table, with `transport` and `inbound_cidrs` given.
    fn render(&self, transport: &str, cidrs: &[String]) -> String {
        let mut out = format!(
            "[[trunks]]\nname = {}\naddress = {}\ntransport = {}\ninbound_cidrs = {}\n\
             prefixes = {}\npriority = {}\noptions_interval_secs = {}\nregister = {}\n",
            quoted(&self.name),
            quoted(&self.address.to_string()),
            quoted(transport),
            list(cidrs),
            list(&self.prefixes),
            self.priority,
            self.options_interval_secs,
            self.register,
        );
        if let Some(secs) = self.register_expires_secs {
            let _ = writeln!(out, "register_expires_secs = {secs}");
        }
        if let Some((u, p)) = &self.credentials {
            let _ = writeln!(out, "username = {}\npassword = {}", quoted(u), quoted(p));
        }
        out
    }
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            numbers: POOL.iter().map(|n| n.to_string()).collect(),
            inbound_cidrs: vec!["127.0.0.1/32".into()],
            ring_timeout_secs: 20,
            extra_toml: String::new(),
            trunk_transport: "udp".into(),
            trunk_credentials: None,
            users: Vec::new(),
            media_timeout_secs: None,
            trunks: Vec::new(),
            store_url: None,
        }
    }
}

/// A TOML string literal (basic string with escapes).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", inner.join(", "))
}

impl StartOptions {
    /// The config file for an instance on `ports` keeping its data in `dir`.
    pub fn render(&self, ports: &PortBlock, dir: &Path) -> String {
        let (rtp_min, rtp_max) = ports.maskline_rtp();
        let dir = dir.display().to_string();
        let trunks = if self.trunks.is_empty() {
            format!(
                "[[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:{trunk}\"\n\
                 transport = {transport}\ninbound_cidrs = {cidrs}\n{auth}\n",
                trunk = ports.trunk(),
                transport = quoted(&self.trunk_transport),
                cidrs = list(&self.inbound_cidrs),
                auth = self
                    .trunk_credentials
                    .as_ref()
                    .map_or_else(String::new, |(u, p)| {
                        format!("username = {}\npassword = {}", quoted(u), quoted(p))
                    }),
            )
        } else {
            self.trunks
                .iter()
                .map(|t| t.render(&self.trunk_transport, &self.inbound_cidrs))
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            r#"# generated by the maskline-e2e harness
[sip]
listen = "127.0.0.1:{sip}"
public_address = "127.0.0.1"

[rtp]
port_min = {rtp_min}
port_max = {rtp_max}
{media_timeout}
[http]
listen = "127.0.0.1:{http}"

[store]
url = {store}

[recording]
dir = {recordings}

{trunks}
[[tenants]]
name = "e2e"
api_keys = [{key}]
numbers = {numbers}

[calls]
ring_timeout_secs = {ring}
{extra}
{users}
"#,
            sip = ports.sip(),
            http = ports.http(),
            store = quoted(
                &self
                    .store_url
                    .clone()
                    .unwrap_or_else(|| format!("sqlite://{dir}/maskline.db"))
            ),
            recordings = quoted(&format!("{dir}/recordings")),
            key = quoted(API_KEY),
            numbers = list(&self.numbers),
            ring = self.ring_timeout_secs,
            media_timeout = self
                .media_timeout_secs
                .map_or_else(String::new, |s| format!("media_timeout_secs = {s}\n")),
            extra = self.extra_toml,
            users = self
                .users
                .iter()
                .map(|(u, p)| format!(
                    "[[users]]\nusername = {}\npassword = {}\n",
                    quoted(u),
                    quoted(p)
                ))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_toml_specials() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("x\ny"), r#""x\u000Ay""#);
    }

    #[test]
    fn render_names_every_port_and_path() {
        let ports = match PortBlock::allocate() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let text = StartOptions::default().render(&ports, Path::new("/tmp/x"));
        for needle in [
            format!("listen = \"127.0.0.1:{}\"", ports.sip()),
            format!("listen = \"127.0.0.1:{}\"", ports.http()),
            format!("address = \"127.0.0.1:{}\"", ports.trunk()),
            format!("port_min = {}", ports.maskline_rtp().0),
            "url = \"sqlite:///tmp/x/maskline.db\"".to_string(),
            "dir = \"/tmp/x/recordings\"".to_string(),
            "inbound_cidrs = [\"127.0.0.1/32\"]".to_string(),
            format!("api_keys = [\"{API_KEY}\"]"),
            "ring_timeout_secs = 20".to_string(),
        ] {
            assert!(text.contains(&needle), "missing `{needle}` in\n{text}");
        }
    }

    #[test]
    fn render_sets_the_media_timeout_in_rtp() {
        let ports = match PortBlock::allocate() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let plain = StartOptions::default().render(&ports, Path::new("/tmp/x"));
        assert!(!plain.contains("media_timeout_secs"), "{plain}");
        let text = StartOptions {
            media_timeout_secs: Some(2),
            ..StartOptions::default()
        }
        .render(&ports, Path::new("/tmp/x"));
        let rtp = text
            .split("[rtp]")
            .nth(1)
            .and_then(|t| t.split("[http]").next())
            .unwrap_or_default();
        assert!(rtp.contains("\nmedia_timeout_secs = 2\n"), "{text}");
    }

    #[test]
    fn render_lists_users() {
        let ports = match PortBlock::allocate() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let plain = StartOptions::default().render(&ports, Path::new("/tmp/x"));
        assert!(!plain.contains("[[users]]"), "{plain}");
        let text = StartOptions {
            users: vec![
                (PARTY_A.into(), "pw-a".into()),
                (PARTY_B.into(), "pw-b".into()),
            ],
            ..StartOptions::default()
        }
        .render(&ports, Path::new("/tmp/x"));
        for needle in [
            format!("[[users]]\nusername = \"{PARTY_A}\"\npassword = \"pw-a\"\n"),
            format!("[[users]]\nusername = \"{PARTY_B}\"\npassword = \"pw-b\"\n"),
        ] {
            assert!(text.contains(&needle), "missing `{needle}` in\n{text}");
        }
    }

    #[test]
    fn render_sets_trunk_transport_and_credentials() {
        let ports = match PortBlock::allocate() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let trunk_of = |text: &str| -> String {
            text.split("[[trunks]]")
                .nth(1)
                .and_then(|t| t.split("[[tenants]]").next())
                .unwrap_or_default()
                .to_string()
        };
        let plain = trunk_of(&StartOptions::default().render(&ports, Path::new("/tmp/x")));
        assert!(plain.contains("transport = \"udp\"\n"), "{plain}");
        assert!(!plain.contains("username ="), "{plain}");
        let text = StartOptions {
            trunk_transport: "tcp".into(),
            trunk_credentials: Some(("maskline".into(), "trunk-secret".into())),
            ..StartOptions::default()
        }
        .render(&ports, Path::new("/tmp/x"));
        let trunk = trunk_of(&text);
        for needle in [
            "transport = \"tcp\"\n",
            "username = \"maskline\"\n",
            "password = \"trunk-secret\"\n",
        ] {
            assert!(
                trunk.contains(needle),
                "missing `{needle}` in the trunk:\n{text}"
            );
        }
    }

    #[test]
    fn render_lists_several_trunks_in_place_of_the_carrier() {
        let ports = match PortBlock::allocate() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let uk = TrunkSpec {
            prefixes: vec!["+44".into()],
            priority: 1,
            options_interval_secs: 1,
            register: true,
            register_expires_secs: Some(120),
            credentials: Some(("ml".into(), "pw".into())),
            ..TrunkSpec::new("uk", SocketAddr::from(([127, 0, 0, 1], 40001)))
        };
        let text = StartOptions {
            trunks: vec![
                TrunkSpec::new("main", SocketAddr::from(([127, 0, 0, 1], 40000))),
                uk,
            ],
            ..StartOptions::default()
        }
        .render(&ports, Path::new("/tmp/x"));
        assert!(!text.contains("\"carrier\""), "{text}");
        let tables: Vec<&str> = text
            .split("[[trunks]]")
            .skip(1)
            .map(|t| t.split("[[tenants]]").next().unwrap_or_default())
            .collect();
        let [main, uk] = tables.as_slice() else {
            panic!("want two trunks:\n{text}");
        };
        for needle in [
            "\nname = \"main\"\n",
            "\naddress = \"127.0.0.1:40000\"\n",
            "\ntransport = \"udp\"\n",
            "\ninbound_cidrs = [\"127.0.0.1/32\"]\n",
            "\nprefixes = []\n",
            "\npriority = 0\n",
            "\noptions_interval_secs = 0\n",
            "\nregister = false\n",
        ] {
            assert!(main.contains(needle), "missing `{needle}` in\n{main}");
        }
        assert!(!main.contains("username"), "{main}");
        assert!(!main.contains("register_expires_secs"), "{main}");
        for needle in [
            "\nname = \"uk\"\n",
            "\nprefixes = [\"+44\"]\n",
            "\npriority = 1\n",
            "\noptions_interval_secs = 1\n",
            "\nregister = true\n",
            "\nregister_expires_secs = 120\n",
            "\nusername = \"ml\"\npassword = \"pw\"\n",
        ] {
            assert!(uk.contains(needle), "missing `{needle}` in\n{uk}");
        }
    }
}
