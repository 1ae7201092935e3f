//! Maskline benchmarks and load tools.
//!
//! # Layout
//! - [`load`]: the `relay-load` tool as a library ([`load::run`]): an
//!   in-process engine, a raw-UDP UAC/UAS pair and an RTP generator on
//!   loopback, reporting setup, loss, latency, CPU and memory per call.
//! - `src/bin/relay_load.rs`: its command line.
//! - [`api`]: the `api-load` tool (`POST /v1/sessions` over keep-alive
//!   HTTP/1.1, latency percentiles, created sessions for SIPp).
//! - [`floor`]: the kernel's cost of one `recv_from` + `send_to` on
//!   loopback, the floor under any one-syscall-each relay (`micro floor`).
//! - `src/bin/micro.rs`: micro-benchmarks of the hot functions (SIP parse,
//!   routing decision, SDP rewrite, RTP header check) timed with
//!   `std::time::Instant`; no criterion, to keep the build lean.
//!
//! See `benches/README.md` for how to run them and what the figures mean.

pub mod api;
pub mod floor;
pub mod load;
