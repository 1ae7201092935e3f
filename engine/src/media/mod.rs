//! RTP media: port-pair allocation, the per-call relay and what hangs off
//! it (codecs and transcoding, DTMF, statistics, recording).

pub mod codec;
pub mod dtmf;
mod epoll;
#[cfg(test)]
mod goertzel;
pub mod ports;
pub mod recorder;
pub mod recording;
pub mod relay;
mod relay_worker;
pub mod rtp;
pub mod stats;
pub mod transcoding;
