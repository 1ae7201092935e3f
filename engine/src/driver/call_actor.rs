//! One tokio task per call: feeds the sans-IO [`Call`] with datagrams,
//! commands and timer expiries, and carries out what it asks (send SIP,
//! retarget the relay, publish events).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rsipstack::sip::Request;
use tokio::sync::{mpsc, oneshot};

use super::shared::{ActorInput, Shared};
use crate::b2bua::call::AnswerOutcome;
use crate::b2bua::{Call, CallEvent, CallOutput, CallSetup, FirstLeg, Leg};
use crate::handle::{CommandError, CommandReply, Direction, EngineEvent, HangupBy};
use crate::media::codec::Codec;
use crate::media::ports::PortPair;
use crate::media::recorder::RecorderFormat;
use crate::media::recording::Recording;
use crate::media::relay::{self, RelayHandle, Side};
use crate::metrics::Metrics;
use crate::sip::q850;
use crate::sip::transport::Endpoint;

pub(crate) struct NewCall {
    pub engine_id: String,
    pub session_id: String,
    pub control: bool,
    pub record: bool,
    pub masked: String,
    pub caller: String,
    pub callee: String,
    pub start: Start,
    pub b_dest: Endpoint,
    pub b_request_uri: Option<String>,
    pub b_credentials: Option<crate::b2bua::TrunkCredentials>,
    pub b_alternatives: Vec<crate::trunks::TrunkTarget>,
    pub a_ports: PortPair,
    pub b_ports: PortPair,
}

/// How the call starts.
pub(crate) enum Start {
    /// An admitted INVITE from the caller.
    Inbound {
        invite: Request,
        src: Endpoint,
        a_sip_call_id: String,
    },
    /// An originated call: Maskline dials this party first.
    Originate(FirstLeg),
}

pub(crate) async fn run(shared: Arc<Shared>, mut inbox: mpsc::Receiver<ActorInput>, new: NewCall) {
    let NewCall {
        engine_id,
        session_id,
        control,
        record,
        masked,
        caller,
        callee,
        start,
        b_dest,
        b_request_uri,
        b_credentials,
        b_alternatives,
        a_ports,
        b_ports,
    } = new;
    let mut setup = CallSetup {
        local: shared.settings.local.clone(),
        masked,
        callee: callee.clone(),
        b_dest,
        b_request_uri,
        b_credentials,
        b_alternatives,
        a_rtp_port: a_ports.rtp(),
        b_rtp_port: b_ports.rtp(),
        timers: shared.settings.timers,
        ring_timeout: shared.settings.ring_timeout,
        control_timeout: control.then_some(shared.settings.control_timeout),
    };
    let direction = match start {
        Start::Inbound { .. } => Direction::Inbound,
        Start::Originate(_) => Direction::Outbound,
    };
    let initiated = EngineEvent::CallInitiated {
        call_id: engine_id.clone(),
        session_id: session_id.clone(),
        direction,
        caller,
        callee,
        at: SystemTime::now(),
    };
    let mut relay: Option<RelayHandle> = match start_relay(&engine_id, a_ports, b_ports) {
        Some((r, a_port, b_port)) => {
            (setup.a_rtp_port, setup.b_rtp_port) = (a_port, b_port);
            Some(r)
        }
        None => {
            refuse(&shared, &start, initiated, 503, "SWITCH_CONGESTION").await;
            return;
        }
    };
    let created = match &start {
        Start::Inbound { invite, src, .. } => {
            Call::new(setup, invite.clone(), *src, Instant::now())
        }
        Start::Originate(first) => Call::originate(setup, first.clone(), Instant::now()),
    };
    let mut call = match created {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(call_id = %engine_id, error = %e, "cannot set up call");
            refuse(&shared, &start, initiated, 488, "BEARERCAPABILITY_NOTAVAIL").await;
            return;
        }
    };
    let b_call_id = call.b_call_id().to_string();
    let a_call_id = match &start {
        Start::Inbound { a_sip_call_id, .. } => a_sip_call_id.clone(),
        Start::Originate(_) => call.a_call_id().unwrap_or_default().to_string(),
    };
    if let Some(entry) = shared.by_engine_id.get(&engine_id).map(|c| c.clone()) {
        if direction == Direction::Outbound {
            shared
                .by_sip_call_id
                .insert(a_call_id.clone(), (Leg::A, entry.clone()));
        }
        shared
            .by_sip_call_id
            .insert(b_call_id.clone(), (Leg::B, entry));
    }
    emit(&shared, initiated.clone());
    let check_every = (shared.settings.media_timeout / 4)
        .clamp(Duration::from_millis(250), Duration::from_secs(5));
    let mut media_check =
        tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
    media_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Payload types per leg (A, B) and the recording, once answered.
    let mut codec_maps: [Vec<(u8, Codec)>; 2] = [Vec::new(), Vec::new()];
    let mut recording: Option<Recording> = None;
    // `answer` commands waiting for the caller's ACK.
    let mut answer_waiters: Vec<oneshot::Sender<Result<CommandReply, CommandError>>> = Vec::new();
    loop {
        while let Some(out) = call.poll_output() {
            match out {
                CallOutput::Send { dest, bytes } => shared.send(dest, &bytes).await,
                CallOutput::Media(leg, target) => {
                    if let Some(r) = &relay {
                        r.set_target(side_of(leg), target);
                    }
                }
                CallOutput::Transcode(plan) => {
                    tracing::info!(call_id = %engine_id, a = ?plan.a.1, b = ?plan.b.1, "transcoding");
                    if let Some(r) = &relay {
                        r.set_transcode(Some(plan));
                    }
                }
                CallOutput::Codecs(leg, map) => {
                    if let Some(r) = &relay {
                        r.set_codecs(side_of(leg), map.clone());
                    }
                    if let Some(rec) = &recording {
                        rec.set_codecs(side_of(leg), map.clone());
                    }
                    codec_maps[leg as usize] = map;
                }
                CallOutput::Event(ev) => {
                    let mut media = relay.as_ref().map(|r| r.stats()).unwrap_or_default();
                    if let (CallEvent::Hangup { .. }, Some(r)) = (&ev, &relay) {
                        [media.a, media.b] = r.quality().await;
                    }
                    if record
                        && recording.is_none()
                        && matches!(ev, CallEvent::Answered | CallEvent::Bridged)
                    {
                        recording =
                            start_recording(&shared, &engine_id, &codec_maps, relay.as_ref());
                    }
                    match ev {
                        CallEvent::Answered | CallEvent::Bridged => {
                            for w in answer_waiters.drain(..) {
                                let _ = w.send(Ok(CommandReply::Done(1)));
                            }
                        }
                        CallEvent::Hangup { .. } => {
                            for w in answer_waiters.drain(..) {
                                let _ = w.send(Err(CommandError::InvalidState {
                                    call_id: engine_id.clone(),
                                    state: "ended".into(),
                                }));
                            }
                        }
                        CallEvent::Ringing => {}
                    }
                    let ended = matches!(ev, CallEvent::Hangup { .. });
                    if ended {
                        // Free the ports at once; the call itself lingers
                        // to absorb retransmissions.
                        relay = None;
                    }
                    if let CallEvent::Hangup { cause, .. } = &ev {
                        shared.metrics.ended(
                            cause.name,
                            media.a_to_b_packets + media.b_to_a_packets,
                            media.dropped_packets,
                        );
                    }
                    emit(&shared, to_engine_event(ev, &engine_id, &session_id, media));
                    if let Some(rec) = recording.take_if(|_| ended) {
                        match rec.finish(Instant::now()).await {
                            Ok(info) => emit(
                                &shared,
                                EngineEvent::RecordingReady {
                                    call_id: engine_id.clone(),
                                    session_id: session_id.clone(),
                                    path: info.path,
                                    duration_ms: info.duration_ms,
                                    dropped_packets: info.dropped_packets,
                                    at: SystemTime::now(),
                                },
                            ),
                            Err(e) => {
                                tracing::error!(call_id = %engine_id, error = %e, "recording lost")
                            }
                        }
                    }
                    if ended {
                        // Only now, with every event of the call emitted,
                        // is the session free for a new call (and the call
                        // no longer counted as live by a drain).
                        shared
                            .by_session
                            .remove_if(&session_id, |_, c| c.engine_id == engine_id);
                    }
                }
            }
        }
        if call.is_finished() {
            break;
        }
        let deadline = call.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            input = inbox.recv() => match input {
                Some(ActorInput::Sip(leg, msg, from)) => call.on_message(leg, *msg, from, Instant::now()),
                Some(ActorInput::Hangup { cause, by, reply }) => {
                    let cause = q850::by_name(&cause).unwrap_or(q850::Cause { code: 16, name: "NORMAL_CLEARING" });
                    let live = call.hangup(cause, by, Instant::now());
                    let _ = reply.send(Ok(CommandReply::Done(usize::from(live))));
                }
                Some(ActorInput::Answer { reply }) => match call.answer(Instant::now()) {
                    AnswerOutcome::Done => {
                        let _ = reply.send(Ok(CommandReply::Done(1)));
                    }
                    AnswerOutcome::Pending => answer_waiters.push(reply),
                    AnswerOutcome::Invalid(state) => {
                        let _ = reply.send(Err(CommandError::InvalidState { call_id: engine_id.clone(), state: state.into() }));
                    }
                },
                Some(ActorInput::Recording { pause, reply }) => {
                    let result = match &recording {
                        Some(rec) => {
                            if pause { rec.pause(Instant::now()) } else { rec.resume(Instant::now()) }
                            Ok(CommandReply::Done(1))
                        }
                        None => Err(CommandError::InvalidState { call_id: engine_id.clone(), state: "not recording".into() }),
                    };
                    let _ = reply.send(result);
                }
                Some(ActorInput::Disconnect { reply }) => {
                    let result = call
                        .disconnect(HangupBy::Api, Instant::now())
                        .map(|()| CommandReply::Done(1))
                        .map_err(|state| CommandError::InvalidState { call_id: engine_id.clone(), state: state.into() });
                    let _ = reply.send(result);
                }
                None => break,
            },
            _ = sleep_until(deadline) => call.on_timeout(Instant::now()),
            _ = media_check.tick() => {
                // Dead-call detection: a bridged leg (not on hold) that
                // sends no RTP for the media timeout ends the call.
                if let Some(r) = relay.as_ref().filter(|_| call.media_expected()) {
                    let silent = [Side::A, Side::B].into_iter().find(|s| r.idle_for(*s) >= shared.settings.media_timeout);
                    if let Some(side) = silent {
                        tracing::info!(call_id = %engine_id, ?side, "media timeout");
                        let cause = q850::by_name("MEDIA_TIMEOUT").unwrap_or(q850::Cause { code: 102, name: "MEDIA_TIMEOUT" });
                        call.hangup(cause, HangupBy::System, Instant::now());
                    }
                }
            }
        }
    }
    forget(&shared, &engine_id, &session_id, &[&a_call_id, &b_call_id]);
    tracing::debug!(call_id = %engine_id, "call finished");
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn emit(shared: &Shared, ev: EngineEvent) {
    if shared.events.send(ev).is_ok() {
        Metrics::inc(&shared.metrics.events_emitted);
    }
}

fn to_engine_event(
    ev: CallEvent,
    call_id: &str,
    session_id: &str,
    media: crate::handle::MediaStats,
) -> EngineEvent {
    let (call_id, session_id, at) = (
        call_id.to_string(),
        session_id.to_string(),
        SystemTime::now(),
    );
    match ev {
        CallEvent::Ringing => EngineEvent::CallRinging {
            call_id,
            session_id,
            at,
        },
        CallEvent::Answered => EngineEvent::CallAnswered {
            call_id,
            session_id,
            at,
        },
        CallEvent::Bridged => EngineEvent::CallBridged {
            call_id,
            session_id,
            at,
        },
        CallEvent::Hangup {
            cause,
            sip_status,
            by,
            answered,
        } => {
            tracing::info!(%call_id, %session_id, cause = cause.name, hangup_by = by.as_str(), "call ended");
            EngineEvent::CallHangup {
                call_id,
                session_id,
                cause: cause.name.to_string(),
                sip_status,
                hangup_by: by,
                answered,
                at,
                media,
            }
        }
    }
}

/// Start the relay on the allocated (already bound) ports. Returns the
/// relay and its A and B RTP ports.
fn start_relay(
    engine_id: &str,
    a_ports: PortPair,
    b_ports: PortPair,
) -> Option<(RelayHandle, u16, u16)> {
    let (a_port, b_port) = (a_ports.rtp(), b_ports.rtp());
    match relay::spawn(a_ports, b_ports) {
        Ok(r) => Some((r, a_port, b_port)),
        Err(e) => {
            tracing::warn!(call_id = %engine_id, a_port, b_port, error = %e, "cannot start the relay");
            None
        }
    }
}

/// A call that cannot start: the caller gets a final response; an
/// originated call (nobody to answer) gets its initiated and hangup events.
/// The call is then forgotten: its Call-ID and its claim on the session.
async fn refuse(
    shared: &Shared,
    start: &Start,
    initiated: EngineEvent,
    status: u16,
    cause: &'static str,
) {
    let (call_id, session_id) = (
        initiated.call_id().to_string(),
        initiated.session_id().to_string(),
    );
    match start {
        Start::Inbound { invite, src, .. } => {
            shared.refuse(invite, *src, status, Some(cause)).await
        }
        Start::Originate(_) => {
            emit(shared, initiated);
            emit(shared, refusal_event(&call_id, &session_id, status, cause));
        }
    }
    forget(shared, &call_id, &session_id, &[start_call_id(start)]);
}

/// Drop the indexes that lead to call `engine_id`: its SIP Call-IDs, its
/// engine id and its claim on the session.
fn forget(shared: &Shared, engine_id: &str, session_id: &str, sip_call_ids: &[&str]) {
    for id in sip_call_ids {
        shared.by_sip_call_id.remove(*id);
    }
    shared.by_engine_id.remove(engine_id);
    shared
        .by_session
        .remove_if(session_id, |_, c| c.engine_id == engine_id);
}

/// The SIP Call-ID indexed before the actor started (the caller's).
fn start_call_id(start: &Start) -> &str {
    match start {
        Start::Inbound { a_sip_call_id, .. } => a_sip_call_id,
        Start::Originate(_) => "",
    }
}

/// The hangup of an originated call that could not start.
fn refusal_event(call_id: &str, session_id: &str, status: u16, cause: &str) -> EngineEvent {
    EngineEvent::CallHangup {
        call_id: call_id.to_string(),
        session_id: session_id.to_string(),
        cause: cause.to_string(),
        sip_status: Some(status),
        hangup_by: HangupBy::System,
        answered: false,
        at: SystemTime::now(),
        media: Default::default(),
    }
}

fn side_of(leg: Leg) -> Side {
    if leg == Leg::A {
        Side::A
    } else {
        Side::B
    }
}

/// Start recording the answered call to `<recording dir>/<call id>.wav`:
/// wideband (48 kHz) when a leg's preferred codec is Opus, else 8 kHz.
fn start_recording(
    shared: &Shared,
    engine_id: &str,
    codec_maps: &[Vec<(u8, Codec)>; 2],
    relay: Option<&RelayHandle>,
) -> Option<Recording> {
    let relay = relay?;
    let wideband = codec_maps.iter().any(|m| {
        m.iter()
            .find(|(_, c)| c.is_audio())
            .is_some_and(|(_, c)| *c == Codec::Opus)
    });
    let format = RecorderFormat {
        sample_rate: if wideband { 48_000 } else { 8_000 },
    };
    let path = shared
        .settings
        .recording_dir
        .join(format!("{engine_id}.wav"));
    match Recording::start(path, format, Instant::now()) {
        Ok(rec) => {
            rec.set_codecs(Side::A, codec_maps[0].clone());
            rec.set_codecs(Side::B, codec_maps[1].clone());
            relay.set_tap(Some(rec.tap()));
            tracing::info!(call_id = %engine_id, "recording");
            Some(rec)
        }
        Err(e) => {
            tracing::error!(call_id = %engine_id, error = %e, "cannot start recording");
            None
        }
    }
}
