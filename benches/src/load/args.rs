//! Command line of `relay-load` (hand-parsed: a handful of flags does not
//! justify an argument-parser dependency in a bench crate).

use std::net::SocketAddr;
use std::time::Duration;

use super::LoadConfig;

/// `--help` text.
pub const USAGE: &str = "\
relay-load: bridge N calls through an in-process Maskline engine on loopback
and pump RTP through each of them both ways.

USAGE: relay-load [OPTIONS]

  --calls N              calls (one session each)            [100]
  --seconds S            media duration through the relay    [10]
  --pps P                packets/s per stream per direction  [50]
  --baseline-seconds S   direct A<->B run without relay, 0 = skip [3]
  --record               record every call (stereo WAV in a temp dir)
  --engine-threads N     engine runtime worker threads       [1]
  --gen-threads N        generator runtime worker threads    [1]
  --concurrency N        calls set up / torn down at once    [50]
  --sip ADDR             engine SIP listen                   [127.0.0.1:25060]
  --uac ADDR             generator UAC (A side)              [127.0.0.1:25070]
  --trunk ADDR           generator UAS (B side) = trunk      [127.0.0.1:25080]
  --rtp-min PORT         engine RTP range start              [40000]
  --rtp-max PORT         engine RTP range end                [49999]
  --media-base PORT      first generator media port          [50000]
  --gen-sockets K        generator media sockets per side, shared by
                         the calls round-robin                [16]
  --rtpengine NG_ADDR     relay through rtpengine (ng protocol at NG_ADDR)
                         instead of an in-process Maskline engine
  --rtpengine-pid PID    rtpengine's pid (CPU and RSS from /proc/PID)
  -h, --help             this text
";

/// Result of parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Run with this config.
    Run(Box<LoadConfig>),
    /// Print [`USAGE`].
    Help,
}

/// A bad command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// Unknown flag.
    #[error("unknown option `{0}` (try --help)")]
    Unknown(String),
    /// A flag without its value.
    #[error("`{0}` needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("`{flag}`: cannot read `{value}`")]
    BadValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
    },
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, ArgsError> {
    let v = v.ok_or_else(|| ArgsError::MissingValue(flag.to_string()))?;
    v.parse().map_err(|_| ArgsError::BadValue {
        flag: flag.to_string(),
        value: v,
    })
}

fn seconds(flag: &str, v: Option<String>) -> Result<Duration, ArgsError> {
    let s: f64 = value(flag, v.clone())?;
    Duration::try_from_secs_f64(s).map_err(|_| ArgsError::BadValue {
        flag: flag.to_string(),
        value: v.unwrap_or_default(),
    })
}

/// Parse the arguments after the program name. Ranges are checked later by
/// [`LoadConfig::validate`].
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, ArgsError> {
    let mut c = LoadConfig::default();
    let mut args = args.into_iter();
    let (mut ng, mut pid): (Option<SocketAddr>, Option<u32>) = (None, None);
    while let Some(flag) = args.next() {
        let f = flag.as_str();
        match f {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--calls" => c.calls = value(f, args.next())?,
            "--seconds" => c.media = seconds(f, args.next())?,
            "--pps" => c.pps = value(f, args.next())?,
            "--baseline-seconds" => c.baseline = seconds(f, args.next())?,
            "--record" => c.record = true,
            "--engine-threads" => c.engine_threads = value(f, args.next())?,
            "--gen-threads" => c.generator_threads = value(f, args.next())?,
            "--concurrency" => c.concurrency = value(f, args.next())?,
            "--sip" => c.sip = value::<SocketAddr>(f, args.next())?,
            "--uac" => c.uac = value::<SocketAddr>(f, args.next())?,
            "--trunk" => c.trunk = value::<SocketAddr>(f, args.next())?,
            "--rtp-min" => c.rtp_ports.0 = value(f, args.next())?,
            "--rtp-max" => c.rtp_ports.1 = value(f, args.next())?,
            "--media-base" => c.media_base = value(f, args.next())?,
            "--gen-sockets" => c.gen_sockets = value(f, args.next())?,
            "--rtpengine" => ng = Some(value(f, args.next())?),
            "--rtpengine-pid" => pid = Some(value(f, args.next())?),
            _ => return Err(ArgsError::Unknown(flag)),
        }
    }
    c.rtpengine = match (ng, pid) {
        (Some(ng), Some(pid)) => Some(super::RtpengineTarget { ng, pid }),
        (None, None) => None,
        (Some(_), None) => return Err(ArgsError::MissingValue("--rtpengine-pid".into())),
        (None, Some(_)) => return Err(ArgsError::MissingValue("--rtpengine".into())),
    };
    Ok(Parsed::Run(Box::new(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Parsed, ArgsError> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_override_defaults() {
        let Ok(Parsed::Run(c)) =
            parse("--calls 200 --seconds 2.5 --pps 25 --sip 127.0.0.1:5999 --rtp-min 30000")
        else {
            panic!("did not parse")
        };
        assert_eq!((c.calls, c.pps), (200, 25));
        assert_eq!(c.media, Duration::from_millis(2500));
        assert_eq!(c.sip.port(), 5999);
        assert_eq!(c.rtp_ports, (30000, 49999));
        assert_eq!(parse(""), Ok(Parsed::Run(Box::default())));
        assert_eq!(parse("--help"), Ok(Parsed::Help));
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse("--calls"),
            Err(ArgsError::MissingValue("--calls".into()))
        );
        assert!(matches!(
            parse("--calls many"),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse("--seconds -1"),
            Err(ArgsError::BadValue { .. })
        ));
        assert_eq!(parse("--bogus"), Err(ArgsError::Unknown("--bogus".into())));
        assert_eq!(
            parse("--rtpengine 127.0.0.1:2223"),
            Err(ArgsError::MissingValue("--rtpengine-pid".into()))
        );
        let Ok(Parsed::Run(c)) = parse("--rtpengine 127.0.0.1:2223 --rtpengine-pid 42") else {
            panic!("did not parse")
        };
        assert_eq!(c.rtpengine.map(|r| r.pid), Some(42));
    }
}
