//! SIP wire parsing: `message::parse` must never panic, and whatever it
//! accepts must serialise (`to_bytes`) into something it accepts again.
//! Also exercises the accessors the dispatcher runs on every datagram, the
//! response builder, and the best-effort `400` for rejected datagrams.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use maskline_engine::sip::{e164, message};
use rsipstack::sip::SipMessage;

fuzz_target!(|data: &[u8]| {
    let msg = match message::parse(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = message::bad_request_for(data, &e.to_string());
            return;
        }
    };
    let _ = message::call_id(&msg);
    let _ = message::cseq(&msg);
    let _ = message::top_via_branch(&msg);
    let _ = message::from_tag(&msg);
    let _ = message::to_tag(&msg);
    let bytes = msg.to_bytes();
    if let Err(e) = message::parse(&bytes) {
        panic!(
            "re-parse of the serialised message failed: {e}\n--- input ---\n{}\n--- serialised ---\n{}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&bytes)
        );
    }
    if let SipMessage::Request(req) = msg {
        let _ = message::caller_identity(&req).and_then(|c| e164::normalize(&c));
        let _ = message::uri_user(&req.uri).and_then(|u| e164::normalize(&u));
        let src: SocketAddr = ([192, 0, 2, 1], 5060).into();
        let _ = message::response_destination(&req, src);
        let _ = message::has_sdp(&req, &req.body);
        let resp = message::response(&req, 486, Some("fuzz"), &[], None).to_bytes();
        if let Err(e) = message::parse(&resp) {
            panic!(
                "our response to an accepted request does not parse: {e}\n--- request ---\n{}\n--- response ---\n{}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&resp)
            );
        }
    }
});
