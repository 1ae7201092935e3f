//! SIP over TCP framing (`sip::framing`): `check` and `parse_frame` never
//! panic, and what they cut does not depend on how the stream arrives.
//!
//! The first input byte picks a read size (1–256 bytes); the rest is the
//! stream. It is framed twice: all at once, and fed read by read as a
//! connection would see it. Both must yield the same frames and stop at
//! the same place (a framing error, or an incomplete tail). Frames
//! concatenated must equal the consumed prefix; a message frame starts
//! with neither CR nor LF; `check` never claims more bytes than it has.
//! Every message frame also goes through the SIP parser, as the TCP
//! reader does.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use maskline_engine::sip::framing::{self, Frame, FramingError, Limits};
use maskline_engine::sip::message;

/// Small limits so that the fuzzer reaches them.
const LIMITS: Limits = Limits {
    max_header: 2048,
    max_body: 4096,
};

/// What framing cut off a stream: message frames and keep-alive runs (the
/// bytes each covered; adjacent runs merged, since a run split across reads
/// is two keep-alives, one when read at once), and how framing stopped.
#[derive(Debug, Default, PartialEq, Eq)]
struct Cut {
    pieces: Vec<(bool, Vec<u8>)>,
    error: Option<FramingError>,
}

impl Cut {
    fn push(&mut self, message: bool, bytes: &[u8]) {
        match self.pieces.last_mut() {
            Some((false, run)) if !message => run.extend_from_slice(bytes),
            _ => self.pieces.push((message, bytes.to_vec())),
        }
    }

    fn consumed(&self) -> Vec<u8> {
        self.pieces
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }
}

/// Take every frame off `buf`, whose first byte is `stream[*offset]`.
fn drain(stream: &[u8], offset: &mut usize, buf: &mut BytesMut, cut: &mut Cut) {
    loop {
        let before = buf.len();
        if let Ok(n) = framing::check(buf, &LIMITS) {
            assert!(n > 0 && n <= before, "check claimed {n} of {before} bytes");
        }
        match framing::parse_frame(buf, &LIMITS) {
            Ok(Some(frame)) => {
                let taken = before - buf.len();
                assert!(taken > 0, "a frame consumed nothing");
                let bytes = stream.get(*offset..*offset + taken).unwrap_or_default();
                assert_eq!(bytes.len(), taken, "a frame beyond the stream");
                *offset += taken;
                match &frame {
                    Frame::Message(m) => {
                        assert_eq!(&m[..], bytes, "a message frame is not the bytes it took");
                        assert!(
                            !matches!(m.first(), Some(b'\r' | b'\n')),
                            "a message frame starts with CR/LF"
                        );
                        let _ = message::parse(m);
                    }
                    Frame::KeepAlive => assert!(
                        bytes.iter().all(|b| matches!(b, b'\r' | b'\n')),
                        "a keep-alive took more than CR/LF"
                    ),
                }
                cut.push(matches!(frame, Frame::Message(_)), bytes);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                return;
            }
            Err(e) => {
                assert_eq!(buf.len(), before, "an error consumed bytes");
                cut.error = Some(e);
                return;
            }
        }
    }
}

fn whole(stream: &[u8]) -> Cut {
    let mut cut = Cut::default();
    drain(stream, &mut 0, &mut BytesMut::from(stream), &mut cut);
    cut
}

fn read_by_read(stream: &[u8], read: usize) -> Cut {
    let mut cut = Cut::default();
    let mut buf = BytesMut::new();
    let mut offset = 0;
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        drain(stream, &mut offset, &mut buf, &mut cut);
        if cut.error.is_some() {
            break; // the connection is closed here
        }
    }
    cut
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(first) + 1;
    let all = whole(stream);
    let consumed = all.consumed();
    assert_eq!(
        stream.get(..consumed.len()),
        Some(&consumed[..]),
        "the frames are not the start of the stream"
    );
    let parts = read_by_read(stream, read);
    assert_eq!(
        all, parts,
        "framing depends on read boundaries ({read}-byte reads)"
    );
});
