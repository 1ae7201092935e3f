//! A call recording as a tokio task: the relay hands it copies of RTP
//! packets through a bounded queue ([`Tap`]) and never waits on it (a full
//! queue drops the copy and counts it); the task decodes and places them
//! with the [`Recorder`], pauses and resumes on request, and finalises the
//! WAV at hangup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rtp_rs::RtpReader;
use tokio::sync::{mpsc, oneshot};

use super::codec::Codec;
use super::recorder::{Recorder, RecorderError, RecorderFormat, RecordingInfo};
use super::relay::Side;

/// Packets queued per recording before the relay starts dropping copies.
const QUEUE: usize = 2048;

enum Msg {
    Packet(Side, Bytes, Instant),
    Codecs(Side, Vec<(u8, Codec)>),
    Pause(Instant),
    Resume(Instant),
    Finish(
        Instant,
        oneshot::Sender<Result<RecordingInfo, RecorderError>>,
    ),
}

/// The relay's end: hand a packet copy over without ever waiting.
#[derive(Clone)]
pub struct Tap {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Tap {
    /// Queue a copy of an RTP packet from `side`; a full queue drops it.
    #[inline]
    pub fn packet(&self, side: Side, packet: &[u8], arrival: Instant) {
        if self
            .tx
            .try_send(Msg::Packet(side, Bytes::copy_from_slice(packet), arrival))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A running recording.
pub struct Recording {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
}

impl Recording {
    /// Create the WAV at `path` and start the writer task; the recording's
    /// time origin is `now` (the answer), so its length matches the
    /// answered duration.
    pub fn start(
        path: PathBuf,
        format: RecorderFormat,
        now: Instant,
    ) -> Result<Recording, RecorderError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut recorder = Recorder::create(&path, format)?;
        recorder.resume(now)?; // anchors the timeline at `now`
        let (tx, rx) = mpsc::channel(QUEUE);
        // Decoding and file writes run on their own thread, never on the
        // relay's: a slow disk must not delay anyone's media.
        match recorder_runtime() {
            Some(rt) => {
                rt.spawn(run(recorder, rx));
            }
            None => {
                tokio::spawn(run(recorder, rx));
            }
        }
        Ok(Recording {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            path,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The relay's tap.
    pub fn tap(&self) -> Tap {
        Tap {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Payload types of `side` (from its SDP).
    pub fn set_codecs(&self, side: Side, map: Vec<(u8, Codec)>) {
        let _ = self.tx.try_send(Msg::Codecs(side, map));
    }

    /// Silence from `now` until [`resume`](Self::resume).
    pub fn pause(&self, now: Instant) {
        let _ = self.tx.try_send(Msg::Pause(now));
    }

    /// Record again from `now`.
    pub fn resume(&self, now: Instant) {
        let _ = self.tx.try_send(Msg::Resume(now));
    }

    /// Finalise the file at `now`. The relay's dropped copies are added to
    /// the recorder's own count.
    pub async fn finish(self, now: Instant) -> Result<RecordingInfo, RecorderError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Finish(now, tx)).await.is_err() {
            return Err(RecorderError::Wav(hound::Error::IoError(
                std::io::Error::other("recorder stopped"),
            )));
        }
        let mut info = rx.await.map_err(|_| {
            RecorderError::Wav(hound::Error::IoError(std::io::Error::other(
                "recorder stopped",
            )))
        })??;
        info.dropped_packets += self.dropped.load(Ordering::Relaxed);
        Ok(info)
    }
}

/// The recorders' runtime: one worker thread (`ml-recorder`), created on
/// first use and kept for the life of the process.
fn recorder_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ml-recorder")
            .enable_all()
            .build()
            .ok()
    })
    .as_ref()
}

async fn run(mut recorder: Recorder, mut rx: mpsc::Receiver<Msg>) {
    let mut codecs: [HashMap<u8, Codec>; 2] = [HashMap::new(), HashMap::new()];
    let mut failed = false;
    while let Some(msg) = rx.recv().await {
        let result = match msg {
            Msg::Packet(side, data, arrival) => {
                let Ok(rtp) = RtpReader::new(&data) else {
                    continue;
                };
                let pt = rtp.payload_type();
                let map = &codecs[side.index()];
                let Some(codec) = map
                    .get(&pt)
                    .copied()
                    .or_else(|| Codec::from_static_payload_type(pt))
                else {
                    continue;
                };
                if failed {
                    continue;
                }
                recorder.push(
                    side,
                    codec,
                    rtp.sequence_number().into(),
                    rtp.timestamp(),
                    rtp.payload(),
                    arrival,
                )
            }
            Msg::Codecs(side, map) => {
                codecs[side.index()] = map.into_iter().collect();
                Ok(())
            }
            Msg::Pause(now) => recorder.pause(now),
            Msg::Resume(now) => recorder.resume(now),
            Msg::Finish(now, reply) => {
                let _ = reply.send(recorder.finish(now));
                return;
            }
        };
        if let Err(e) = result {
            if !failed {
                tracing::error!(error = %e, "recording failed; further audio is not written");
            }
            failed = true;
        }
    }
}
