//! RTP media: port-pair allocation and the per-call relay.

pub mod ports;
pub mod relay;
pub mod rtp;
