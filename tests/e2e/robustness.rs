//! What any SIP server on the open network must survive: OPTIONS is
//! answered, a malformed request gets 400, garbage does not bring it down.

use maskline_e2e::{bounded, Maskline, Result, SipPeer, StartOptions, WAIT};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::TEST_LIMIT;

fn peer_addr(ml: &Maskline, i: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], ml.ports().peer(i)))
}

/// Maskline is alive and well: OPTIONS → 200 and `/healthz` → 200.
async fn assert_healthy(ml: &mut Maskline, peer: &mut SipPeer) -> Result<()> {
    ml.assert_running()?;
    let resp = peer.options(WAIT).await?;
    assert_eq!(resp.status(), Some(200), "{}", resp.raw_text());
    assert_eq!(ml.api().healthz().await?, 200);
    Ok(())
}

#[tokio::test]
async fn options_gets_200() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let mut peer = SipPeer::bind(peer_addr(&ml, 0), ml.sip_addr()).await?;
        let resp = peer.options(WAIT).await?;
        assert_eq!(resp.status(), Some(200), "{}", resp.raw_text());
        Ok(())
    })
    .await
}

/// A request whose CSeq is not a number (everything else well formed, so
/// Maskline can address a response) gets 400, and the server keeps working.
#[tokio::test]
async fn malformed_request_gets_400_and_the_server_keeps_working() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions::default()).await?;
        let mut peer = SipPeer::bind(peer_addr(&ml, 0), ml.sip_addr()).await?;
        let local = peer.local_addr();
        let server = ml.sip_addr();
        let call_id = "malformed-1@127.0.0.1";
        let bad = format!(
            "INVITE sip:+15550000001@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bKmalformed1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+14155550101@{local}>;tag=m1\r\n\
             To: <sip:+15550000001@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: notanumber INVITE\r\n\
             Contact: <sip:+14155550101@{local}>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        peer.send_raw(bad.as_bytes()).await?;
        let resp = peer
            .recv_where("a response to the malformed INVITE", WAIT, |m| {
                m.call_id() == Some(call_id) && m.status().is_some_and(|s| s >= 200)
            })
            .await?;
        assert_eq!(resp.status(), Some(400), "{}", resp.raw_text());
        assert_healthy(&mut ml, &mut peer).await
    })
    .await
}

/// A burst of junk datagrams (random bytes, truncated and absurd SIP) and
/// junk on a TCP connection; then the server still answers OPTIONS.
#[tokio::test]
async fn garbage_does_not_crash_it() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions::default()).await?;
        let mut peer = SipPeer::bind(peer_addr(&ml, 0), ml.sip_addr()).await?;
        let server = ml.sip_addr();
        let local = peer.local_addr();
        let templates: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\r\n\r\n".to_vec(),
            b"INVITE".to_vec(),
            b"INVITE sip:x SIP/2.0\r\n".to_vec(),
            format!("INVITE sip:+15550000001@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local}\r\nContent-Length: 99999999\r\n\r\nv=0").into_bytes(),
            format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {server};branch=z9hG4bKnothing\r\nCSeq: 1 INVITE\r\nCall-ID: none\r\n\r\n").into_bytes(),
            format!("BYE sip:x@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKjunk\r\nCall-ID: none\r\nCSeq: 1 BYE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\r\n").into_bytes(),
            format!("INVITE sip:+15550000001@{server} SIP/2.0\r\nVia: SIP/2.0/UDP [::1\r\nFrom: \u{0}\u{0}\r\nTo: <sip:@>\r\nCSeq: 4294967296 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 9\r\n\r\nm=audio x").into_bytes(),
        ];
        let mut rng = rand::rng();
        for i in 0..600usize {
            let mut datagram = match templates.get(i % (templates.len() + 1)) {
                Some(t) => t.clone(),
                None => {
                    let len = rng.random_range(1..1400);
                    (0..len).map(|_| rng.random::<u8>()).collect()
                }
            };
            if i % 3 == 0 && !datagram.is_empty() {
                let at = rng.random_range(0..datagram.len());
                datagram.truncate(at.max(1));
            }
            peer.send_raw(&datagram).await?;
        }
        if let Ok(mut tcp) = TcpStream::connect(server).await {
            let junk: Vec<u8> = (0..8192).map(|_| rng.random::<u8>()).collect();
            let _ = tcp.write_all(&junk).await;
            let _ = tcp
                .write_all(b"INVITE sip:x SIP/2.0\r\nContent-Length: 100000000\r\n\r\n")
                .await;
            let _ = tcp.shutdown().await;
        }
        // Whatever Maskline answered to the junk stays in the peer's backlog;
        // OPTIONS is matched by its own Call-ID.
        assert_healthy(&mut ml, &mut peer).await
    })
    .await
}

/// A scanner's OPTIONS (User-Agent `friendly-scanner`) gets no answer at
/// all, while the same request from a normal client gets 200; both show up
/// in `/metrics`.
#[tokio::test]
async fn scanners_are_dropped_silently_and_counted() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let sock = tokio::net::UdpSocket::bind(peer_addr(&ml, 1))
            .await
            .map_err(|e| maskline_e2e::E2eError::io("binding the scanner socket", e))?;
        let local = sock
            .local_addr()
            .map_err(|e| maskline_e2e::E2eError::io("scanner address", e))?;
        let options = |ua: &str, n: u32| {
            format!(
                "OPTIONS sip:100@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKscan{n}\r\n\
                 From: <sip:100@{local}>;tag=s{n}\r\nTo: <sip:100@{sip}>\r\nCall-ID: scan-{n}@{local}\r\n\
                 CSeq: 1 OPTIONS\r\nUser-Agent: {ua}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                sip = ml.sip_addr()
            )
        };
        let mut buf = vec![0u8; 4096];
        // The normal client first: its 200 proves the socket path works, so
        // the scanner's silence below is Maskline's doing.
        sock.send_to(options("Linphone/5.2", 1).as_bytes(), ml.sip_addr())
            .await
            .map_err(|e| maskline_e2e::E2eError::io("sending OPTIONS", e))?;
        let n = tokio::time::timeout(WAIT, sock.recv(&mut buf))
            .await
            .map_err(|_| maskline_e2e::E2eError::Unexpected("no answer to a normal OPTIONS".into()))?
            .map_err(|e| maskline_e2e::E2eError::io("receiving", e))?;
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 "));
        for i in 0..20 {
            sock.send_to(options("friendly-scanner", 100 + i).as_bytes(), ml.sip_addr())
                .await
                .map_err(|e| maskline_e2e::E2eError::io("sending OPTIONS", e))?;
        }
        // Metrics are updated before any answer would be sent; once they
        // count all 20, nothing can still be on its way.
        let metrics_url = format!("{}/metrics", ml.api().base());
        maskline_e2e::wait_for("the scanner counter", WAIT, || async {
            let text = reqwest::get(&metrics_url)
                .await
                .map_err(|e| maskline_e2e::E2eError::Unexpected(e.to_string()))?
                .text()
                .await
                .map_err(|e| maskline_e2e::E2eError::Unexpected(e.to_string()))?;
            Ok(text.lines().any(|l| l == "maskline_sip_scanner_dropped_total 20").then_some(()))
        })
        .await?;
        let silent = tokio::time::timeout(std::time::Duration::from_millis(300), sock.recv(&mut buf)).await;
        assert!(silent.is_err(), "a scanner got an answer: {:?}", silent.map(|r| r.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())));
        Ok(())
    })
    .await
}
