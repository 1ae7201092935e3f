//! The typed configuration with the defaults of `CONTRACT.md`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[sip]`
    pub sip: SipConfig,
    /// `[rtp]`
    pub rtp: RtpConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[recording]`
    pub recording: RecordingConfig,
    /// `[[trunks]]`; defaults to one `carrier` trunk at 127.0.0.1:5080.
    pub trunks: Vec<TrunkConfig>,
    /// `[[tenants]]`; when empty the control plane creates a `dev` tenant.
    pub tenants: Vec<TenantConfig>,
    /// `[calls]`
    pub calls: CallsConfig,
    /// `[webhooks]`
    pub webhooks: WebhooksConfig,
    /// `[[users]]`: softphones allowed to REGISTER.
    pub users: Vec<UserConfig>,
    /// `[log]`
    pub log: LogConfig,
    /// `[cluster]`: several nodes on one PostgreSQL (off by default).
    pub cluster: crate::cluster::ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            rtp: RtpConfig::default(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            recording: RecordingConfig::default(),
            trunks: vec![TrunkConfig::default()],
            tenants: Vec::new(),
            calls: CallsConfig::default(),
            webhooks: WebhooksConfig::default(),
            users: Vec::new(),
            log: LogConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
    /// Address advertised in Via, Contact and SDP.
    pub public_address: IpAddr,
    /// Digest algorithms offered to softphones.
    pub digest_algorithms: Vec<DigestAlgorithm>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            public_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            digest_algorithms: vec![DigestAlgorithm::Md5],
        }
    }
}

/// A digest algorithm (RFC 2617 MD5, RFC 8760 SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    /// `MD5`
    #[serde(rename = "MD5")]
    Md5,
    /// `SHA-256`
    #[serde(rename = "SHA-256")]
    Sha256,
}

/// `[rtp]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// First port of the RTP range (even; RTCP uses port + 1).
    pub port_min: u16,
    /// Last port of the RTP range.
    pub port_max: u16,
    /// A leg with no RTP for this long ends the call.
    pub media_timeout_secs: u64,
    /// Local address RTP sockets bind to; defaults to the IP of `sip.listen`.
    pub bind_address: Option<IpAddr>,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            port_min: 20000,
            port_max: 29999,
            media_timeout_secs: 60,
            bind_address: None,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Control API listen address.
    pub listen: SocketAddr,
    /// Requests per second allowed per API key (sustained; 0 = no limit).
    /// Over it: 429 `rate_limited` with `Retry-After`.
    pub rate_limit_per_sec: u32,
    /// Requests an API key may send at once above the sustained rate.
    pub rate_limit_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            rate_limit_per_sec: 500,
            rate_limit_burst: 1000,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://maskline-data/maskline.db".into(),
        }
    }
}

/// `[recording]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Directory for `<call_id>.wav` files.
    pub dir: PathBuf,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: PathBuf::from("maskline-data/recordings"),
        }
    }
}

/// SIP transport of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    /// UDP (default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// `[[trunks]]`: a carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkConfig {
    /// Name used in logs.
    pub name: String,
    /// Where outbound legs go.
    pub address: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: TrunkTransport,
    /// Source networks allowed to send INVITEs in.
    pub inbound_cidrs: Vec<Cidr>,
    /// Digest username when the carrier challenges.
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// Expected realm (any when unset).
    pub realm: Option<String>,
    /// E.164 prefixes (`"+1"`, `"+4420"`) this trunk carries; empty: any
    /// number. The longest matching prefix wins, then `priority`.
    pub prefixes: Vec<String>,
    /// Lower is tried first among trunks matching the number; a trunk that
    /// is down (keep-alive) or fails with 408/503 hands over to the next.
    pub priority: u32,
    /// Send OPTIONS every this many seconds to mark the trunk up or down;
    /// 0 (the default) turns keep-alive off: the trunk is then always up.
    pub options_interval_secs: u64,
    /// Register Maskline at the carrier (outbound REGISTER with
    /// `username`/`password`), refreshed before it expires.
    pub register: bool,
    /// Expiry asked for in the outbound REGISTER.
    pub register_expires_secs: u64,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        TrunkConfig {
            name: "carrier".into(),
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5080),
            transport: TrunkTransport::Udp,
            inbound_cidrs: vec![Cidr {
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 32,
            }],
            username: None,
            password: None,
            realm: None,
            prefixes: Vec::new(),
            priority: 0,
            options_interval_secs: 0,
            register: false,
            register_expires_secs: 3600,
        }
    }
}

/// An IP network such as `127.0.0.1/32` or `2001:db8::/32` (a bare address
/// means a single host). Serialized as its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length (0–32 for IPv4, 0–128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(_), IpAddr::V4(v4)) => self.contains(IpAddr::V6(v4.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        format!("{}/{}", c.addr, c.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network (expected e.g. 203.0.113.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0–{max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

/// `[[tenants]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// Tenant name (unique).
    pub name: String,
    /// Bootstrap API keys (stored hashed).
    pub api_keys: Vec<String>,
    /// Masked numbers of the tenant's pool (E.164).
    pub numbers: Vec<String>,
    /// TTL of a session when the request names none.
    pub default_ttl_minutes: u32,
    /// Largest TTL a request may ask for.
    pub max_ttl_minutes: u32,
    /// Concurrent calls cap.
    pub max_concurrent_calls: u32,
    /// Originate rate; over it calls queue.
    pub calls_per_second: u32,
    /// Optional webhook URL.
    pub webhook_url: Option<String>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            name: String::new(),
            api_keys: Vec::new(),
            numbers: Vec::new(),
            default_ttl_minutes: 60,
            max_ttl_minutes: 240,
            max_concurrent_calls: 100,
            calls_per_second: 10,
            webhook_url: None,
        }
    }
}

/// `[calls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Unanswered outbound leg → NO_ANSWER after this.
    pub ring_timeout_secs: u64,
    /// Inbound call in control mode with no command → default routing.
    pub control_timeout_secs: u64,
    /// On SIGTERM, new INVITEs get 503 and live calls may go on this long
    /// before they are hung up.
    pub drain_timeout_secs: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring_timeout_secs: 60,
            control_timeout_secs: 10,
            drain_timeout_secs: 30,
        }
    }
}

/// `[webhooks]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Delay before each attempt, in seconds.
    pub retry_schedule_secs: Vec<u64>,
    /// Per-request timeout.
    pub timeout_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_schedule_secs: vec![0, 5, 300, 1800, 7200, 18000, 36000],
            timeout_secs: 15,
        }
    }
}

/// `[log]`: what `maskline serve` writes to stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human-readable lines) or `json` (one JSON object per line,
    /// for log shippers).
    pub format: LogFormat,
    /// Which events are written: a level (`error`, `warn`, `info`,
    /// `debug`, `trace`) or `tracing` filter directives such as
    /// `info,maskline_engine=debug`. `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`) and the active spans.
    Json,
}

/// `[[users]]`: a softphone account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// SIP username (the party's E.164 number).
    pub username: String,
    /// Digest password.
    pub password: String,
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddr};

    use super::*;

    fn cidr(s: &str) -> Cidr {
        match s.parse() {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        match s.parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    /// The defaults of CONTRACT.md.
    #[test]
    fn defaults_match_the_contract() {
        let c = Config::default();
        assert_eq!(c.sip.listen, SocketAddr::from(([127, 0, 0, 1], 5060)));
        assert_eq!(c.sip.public_address, ip("127.0.0.1"));
        assert_eq!(c.sip.digest_algorithms, vec![DigestAlgorithm::Md5]);
        assert_eq!(c.http.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (20000, 29999));
        assert_eq!(c.rtp.media_timeout_secs, 60);
        assert_eq!(c.rtp.bind_address, None);
        assert_eq!(c.store.url, "sqlite://maskline-data/maskline.db");
        assert_eq!(c.recording.dir, PathBuf::from("maskline-data/recordings"));
        assert_eq!(c.calls.ring_timeout_secs, 60);
        assert_eq!(c.calls.control_timeout_secs, 10);
        assert_eq!(
            c.webhooks.retry_schedule_secs,
            vec![0, 5, 300, 1800, 7200, 18000, 36000]
        );
        assert_eq!(c.webhooks.timeout_secs, 15);
        assert_eq!(
            c.trunks,
            vec![TrunkConfig {
                name: "carrier".into(),
                address: SocketAddr::from(([127, 0, 0, 1], 5080)),
                transport: TrunkTransport::Udp,
                inbound_cidrs: vec![cidr("127.0.0.1/32")],
                username: None,
                password: None,
                realm: None,
                prefixes: Vec::new(),
                priority: 0,
                options_interval_secs: 0,
                register: false,
                register_expires_secs: 3600,
            }]
        );
        assert!(c.tenants.is_empty());
        assert!(c.users.is_empty());
        assert_eq!(
            c.log,
            LogConfig {
                format: LogFormat::Text,
                level: "info".into()
            }
        );
        let t = TenantConfig::default();
        assert_eq!(
            (
                t.default_ttl_minutes,
                t.max_ttl_minutes,
                t.max_concurrent_calls,
                t.calls_per_second
            ),
            (60, 240, 100, 10)
        );
    }

    #[test]
    fn cidr_contains_ipv4() {
        let net = cidr("203.0.113.0/24");
        assert!(net.contains(ip("203.0.113.0")));
        assert!(net.contains(ip("203.0.113.255")));
        assert!(!net.contains(ip("203.0.114.1")));
        assert!(!net.contains(ip("203.0.112.255")));
        assert!(cidr("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(cidr("0.0.0.0/0").contains(ip("198.51.100.7")));
        assert!(
            cidr("10.1.2.3").contains(ip("10.1.2.3")),
            "bare address = /32"
        );
        assert!(!cidr("10.1.2.3").contains(ip("10.1.2.4")));
    }

    #[test]
    fn cidr_contains_ipv6_and_mapped() {
        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(cidr("::/0").contains(ip("::1")));
        assert!(!net.contains(ip("203.0.113.1")));
        let v4 = cidr("203.0.113.0/24");
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped());
        assert!(v4.contains(mapped), "IPv4-mapped IPv6 source");
        assert!(!v4.contains(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let mapped_net = cidr("::ffff:203.0.113.0/120");
        assert!(mapped_net.contains(ip("203.0.113.200")));
        assert!(!mapped_net.contains(ip("203.0.114.1")));
    }

    #[test]
    fn cidr_parse_and_display() {
        assert_eq!(String::from(cidr("10.0.0.0/8")), "10.0.0.0/8");
        assert_eq!(String::from(cidr("::1")), "::1/128");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
