//! An RTP endpoint: sends a paced stream of packets with recognisable
//! payloads and checks that the other side received exactly those payloads.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{interval, timeout_at, Instant};

use crate::error::{E2eError, Result};

/// Payload size of every packet (20 ms of PCMU).
pub const PAYLOAD_LEN: usize = 160;
const MAGIC: &[u8; 5] = b"MLe2e";
const HEADER_LEN: usize = 12;

/// A UDP socket speaking RTP (version 2, PT 0).
#[derive(Debug)]
pub struct RtpEndpoint {
    socket: UdpSocket,
    local: SocketAddr,
    ssrc: u32,
}

/// The payload of packet `seq` of stream `stream`: a magic prefix, the
/// stream id and sequence number, then a pattern derived from both.
pub fn payload(stream: u8, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAYLOAD_LEN);
    p.extend_from_slice(MAGIC);
    p.push(stream);
    p.extend_from_slice(&seq.to_be_bytes());
    let mut x = u32::from(stream) * 131 + u32::from(seq) * 7;
    while p.len() < PAYLOAD_LEN {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        p.push((x >> 16) as u8);
    }
    p
}

/// A whole RTP packet: V=2, no padding/extension/CSRC, PT 0.
pub fn packet(seq: u16, timestamp: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER_LEN + payload.len());
    p.push(0x80);
    p.push(if marker { 0x80 } else { 0x00 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The payload of an RTP packet (after CSRCs and header extension, before
/// padding), or `None` if it is not RTP version 2.
pub fn rtp_payload(data: &[u8]) -> Option<&[u8]> {
    let first = *data.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(first & 0x0f);
    let mut start = HEADER_LEN + 4 * csrc;
    if first & 0x10 != 0 {
        let ext = data.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([*ext.first()?, *ext.get(1)?]));
    }
    let mut end = data.len();
    if first & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    data.get(start..end)
}

impl RtpEndpoint {
    /// Binds `local`.
    pub async fn bind(local: SocketAddr) -> Result<RtpEndpoint> {
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| E2eError::io(format!("binding RTP endpoint on {local}"), e))?;
        let local = socket
            .local_addr()
            .map_err(|e| E2eError::io("RTP local address", e))?;
        Ok(RtpEndpoint {
            socket,
            local,
            ssrc: rand::random(),
        })
    }

    /// The endpoint's address (what its SDP advertises).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket itself, for tests that send or read their own packets
    /// (tones, telephone-events) from the address the SDP advertised.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Sends `count` packets of stream `stream` to `dest`, one every 20 ms
    /// like a phone; returns the payloads sent.
    pub async fn send_stream(
        &self,
        dest: SocketAddr,
        stream: u8,
        count: u16,
    ) -> Result<Vec<Vec<u8>>> {
        let mut tick = interval(Duration::from_millis(20));
        let mut sent = Vec::with_capacity(usize::from(count));
        let seq0: u16 = rand::random::<u16>() & 0x7fff;
        let ts0: u32 = rand::random::<u32>() & 0x7fff_ffff;
        for i in 0..count {
            tick.tick().await;
            let body = payload(stream, i);
            let pkt = packet(
                seq0.wrapping_add(i),
                ts0.wrapping_add(160 * u32::from(i)),
                self.ssrc,
                i == 0,
                &body,
            );
            self.socket
                .send_to(&pkt, dest)
                .await
                .map_err(|e| E2eError::io(format!("sending RTP to {dest}"), e))?;
            sent.push(body);
        }
        Ok(sent)
    }

    /// Receives until every payload of `expected` arrived (other datagrams,
    /// e.g. RTCP or someone else's stream, are ignored) or `within` passes.
    /// Fails if one arrives altered or missing.
    pub async fn expect_payloads(&self, expected: &[Vec<u8>], within: Duration) -> Result<()> {
        let Some(stream_tag) = expected.first().and_then(|p| p.get(..MAGIC.len() + 1)) else {
            return Ok(());
        };
        let deadline = Instant::now() + within;
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 2048];
        while got.len() < expected.len() {
            let (len, _) = match timeout_at(deadline, self.socket.recv_from(&mut buf)).await {
                Err(_) => {
                    return Err(E2eError::timeout(
                        format!(
                            "{} RTP packets at {} (got {} matching)",
                            expected.len(),
                            self.local,
                            got.len()
                        ),
                        within,
                    ))
                }
                Ok(r) => r.map_err(|e| E2eError::io("receiving RTP", e))?,
            };
            let data = buf.get(..len).unwrap_or_default();
            if let Some(p) = rtp_payload(data).filter(|p| p.starts_with(stream_tag)) {
                got.push(p.to_vec());
            }
        }
        let mut want = expected.to_vec();
        want.sort();
        got.sort();
        if got != want {
            let altered = got.iter().filter(|p| !want.contains(p)).count();
            return Err(E2eError::Unexpected(format!(
                "RTP payloads at {} differ from those sent: {altered} of {} altered",
                self.local,
                got.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_through_the_parser() {
        let body = payload(7, 3);
        assert_eq!(body.len(), PAYLOAD_LEN);
        assert_ne!(payload(7, 3), payload(7, 4));
        assert_ne!(payload(7, 3), payload(8, 3));
        let pkt = packet(1, 2, 3, true, &body);
        assert_eq!(pkt.len(), HEADER_LEN + PAYLOAD_LEN);
        assert_eq!(rtp_payload(&pkt), Some(body.as_slice()));
    }

    #[test]
    fn parser_skips_csrc_extension_and_padding() {
        let mut pkt = vec![0xb1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        pkt.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        pkt.extend_from_slice(b"abc");
        pkt.extend_from_slice(&[0, 2]); // 2 bytes of padding
        assert_eq!(rtp_payload(&pkt), Some(&b"abc"[..]));
        assert_eq!(rtp_payload(&[0x40, 0, 0]), None, "version 1");
        assert_eq!(rtp_payload(&[0x90, 0, 0, 0]), None, "truncated extension");
    }

    #[tokio::test]
    async fn endpoints_exchange_a_stream() -> Result<()> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let a = RtpEndpoint::bind(any).await?;
        let b = RtpEndpoint::bind(any).await?;
        let (sent, recv) = tokio::join!(a.send_stream(b.local_addr(), 1, 5), async {
            let want: Vec<Vec<u8>> = (0..5).map(|i| payload(1, i)).collect();
            b.expect_payloads(&want, Duration::from_secs(5)).await
        });
        assert_eq!(sent?.len(), 5);
        recv
    }
}
