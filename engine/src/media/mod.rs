//! RTP media: port-pair allocation and the per-call relay.

pub mod codec;
pub mod dtmf;
#[cfg(test)]
mod goertzel;
pub mod ports;
pub mod recorder;
pub mod recording;
pub mod relay;
pub mod rtp;
pub mod stats;
pub mod transcoding;
