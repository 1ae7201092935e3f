//! CPU time and resident memory of this process from `/proc` (Linux).
//!
//! CPU is split by thread name: the engine runs on a runtime whose threads
//! are named [`ENGINE_THREAD`], the load generator on [`GENERATOR_THREAD`];
//! `/proc/self/task/<tid>/stat` gives each thread's `utime + stime`, so the
//! engine's share is measured directly instead of being inferred.

use std::fs;
use std::io;

/// Name of the engine runtime's threads.
pub const ENGINE_THREAD: &str = "ml-engine";
/// Name of the load generator runtime's threads.
pub const GENERATOR_THREAD: &str = "ml-gen";
/// Name of the engine's recorder thread (counted as engine time).
pub const RECORDER_THREAD: &str = "ml-recorder";
/// Clock ticks per second of `utime`/`stime` (`USER_HZ`, 100 on every
/// mainstream Linux architecture).
pub const TICKS_PER_SEC: u64 = 100;

/// CPU time in clock ticks (`utime + stime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// The whole process (every thread, including exited ones).
    pub process: u64,
    /// Threads named [`ENGINE_THREAD`].
    pub engine: u64,
    /// Threads named [`GENERATOR_THREAD`].
    pub generator: u64,
}

impl CpuTicks {
    /// `self - earlier`, per field (saturating).
    pub fn since(&self, earlier: &CpuTicks) -> CpuTicks {
        CpuTicks {
            process: self.process.saturating_sub(earlier.process),
            engine: self.engine.saturating_sub(earlier.engine),
            generator: self.generator.saturating_sub(earlier.generator),
        }
    }
}

/// Read the process and per-thread CPU times now.
pub fn cpu_ticks() -> io::Result<CpuTicks> {
    let process = stat_fields(&fs::read_to_string("/proc/self/stat")?)
        .map(|(_, ticks)| ticks)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/self/stat"))?;
    let mut out = CpuTicks {
        process,
        ..CpuTicks::default()
    };
    for entry in fs::read_dir("/proc/self/task")? {
        let path = entry?.path().join("stat");
        // A thread may exit between listing and reading.
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        let Some((comm, ticks)) = stat_fields(&text) else {
            continue;
        };
        if comm.starts_with(ENGINE_THREAD) || comm.starts_with(RECORDER_THREAD) {
            out.engine += ticks;
        } else if comm.starts_with(GENERATOR_THREAD) {
            out.generator += ticks;
        }
    }
    Ok(out)
}

/// `(comm, utime + stime)` from a `stat` line. `comm` is in parentheses and
/// may itself contain spaces or parentheses, so fields are counted from the
/// last `)`: after it come state (field 3) … utime (14), stime (15).
pub fn stat_fields(text: &str) -> Option<(&str, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Resident set size of the process, KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> io::Result<u64> {
    vm_rss(&fs::read_to_string("/proc/self/status")?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/self/status"))
}

/// `utime + stime` of another process (every thread, exited ones too).
pub fn ticks_of(pid: u32) -> io::Result<u64> {
    stat_fields(&fs::read_to_string(format!("/proc/{pid}/stat"))?)
        .map(|(_, ticks)| ticks)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable stat"))
}

/// `VmRSS` of another process, KiB.
pub fn rss_kib_of(pid: u32) -> io::Result<u64> {
    vm_rss(&fs::read_to_string(format!("/proc/{pid}/status"))?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS"))
}

/// The `VmRSS` value (KiB) of a `status` text.
pub fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line =
            "1234 (ml-engine) w) S 1 1234 1234 0 -1 4194560 100 0 0 0 57 13 0 0 20 0 3 0 100 0 0";
        assert_eq!(stat_fields(line), Some(("ml-engine) w", 70)));
        assert_eq!(stat_fields("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_this_process() {
        assert!(rss_kib().unwrap() > 0);
        let t = cpu_ticks().unwrap();
        assert!(t.process >= t.engine + t.generator);
        assert_eq!(vm_rss("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        let me = std::process::id();
        assert!(rss_kib_of(me).unwrap() > 0);
        assert!(ticks_of(me).is_ok());
    }
}
