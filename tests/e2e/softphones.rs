//! Real softphones: two baresip instances register to Maskline with digest
//! credentials (A over UDP, B over TCP) and call each other through a masked
//! session, sending test tones that are checked by content on arrival.
//!
//! The trunk is trusted only from 127.0.0.2, so the softphones on 127.0.0.1
//! are not a trunk: their REGISTERs are challenged with 401 and A's INVITE
//! with 407, and the authenticated user is the caller.

use std::time::Duration;

use maskline_e2e::audio::{skip_silence, tone, tone_share, write_wav, Pcm};
use maskline_e2e::{
    assert_absent, bounded, wait_for, Account, Baresip, BaresipEvent, BaresipOptions, Maskline,
    Result, SipTransport, SoftphonePorts, StartOptions, PARTY_A, PARTY_B,
};
use serde_json::Value;

use crate::{digits, TEST_LIMIT};

const PASSWORD_A: &str = "a-secret-0101";
const PASSWORD_B: &str = "b-secret-0202";
/// A sends this tone, B sends the other.
const TONE_A_HZ: f64 = 440.0;
const TONE_B_HZ: f64 = 1000.0;
/// Length of the WAV files: longer than the call (baresip's `aufile` ends
/// the call when its file runs out).
const TONE_SECS: u32 = 20;
/// How long the call carries audio before A hangs up.
const TALK_FOR: Duration = Duration::from_secs(3);
/// Bound on call set-up and tear-down steps.
const CALL_STEP: Duration = Duration::from_secs(10);
/// Samples below this magnitude count as leading silence (tones peak at
/// 10 000).
const SILENCE: i16 = 1_000;
/// Skipped after the silence, then analysed: 0.1 s and 1 s at 8 kHz.
const SETTLE: usize = 800;
const WINDOW: usize = 8_000;

/// Maskline with the two parties as softphone users and a trunk that only
/// 127.0.0.2 may send from.
async fn maskline() -> Result<Maskline> {
    Maskline::start(StartOptions {
        inbound_cidrs: vec!["127.0.0.2/32".into()],
        users: vec![
            (PARTY_A.into(), PASSWORD_A.into()),
            (PARTY_B.into(), PASSWORD_B.into()),
        ],
        ..StartOptions::default()
    })
    .await
}

/// A softphone in port slot `slot` of `ml`'s block that sends a `freq`
/// tone, with a `+sip.instance` in its Contact if `sip_instance`.
async fn softphone(
    ml: &Maskline,
    name: &str,
    slot: u16,
    freq: f64,
    sip_instance: bool,
) -> Result<Baresip> {
    let wav = ml.dir().join(format!("{name}-{freq}hz.wav"));
    write_wav(&wav, &tone(freq, TONE_SECS))?;
    let opts = BaresipOptions {
        sip_instance,
        ..BaresipOptions::new(SoftphonePorts::slot(ml.ports(), slot), &wav)
    };
    Baresip::start(name, &opts).await
}

fn account(ml: &Maskline, user: &str, password: &str, transport: SipTransport) -> Account {
    Account {
        user: user.into(),
        password: password.into(),
        registrar: ml.sip_addr(),
        transport,
        auto_answer: true,
    }
}

async fn register_ok(phone: &mut Baresip, account: &Account) -> Result<()> {
    let ev = phone.register(account).await?;
    assert_eq!(
        ev.kind, "REGISTER_OK",
        "{} ({}) should register with its password: {:?}",
        account.user, account.transport, ev.json
    );
    Ok(())
}

/// The user part of a SIP URI, without `+`.
fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("sip:")?;
    rest.split('@').next().map(digits)
}

/// The trace line (`UDP a -> b` / `TCP a -> b`) that precedes the first
/// message starting with `start_line` in a baresip log.
fn transport_of<'a>(log: &'a str, start_line: &str) -> Option<&'a str> {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let at = lines.iter().position(|l| l.starts_with(start_line))?;
    lines
        .get(..at)?
        .iter()
        .rev()
        .find(|l| l.starts_with("UDP ") || l.starts_with("TCP "))
        .copied()
}

/// `pcm` (what a softphone received) must be `want_hz` and not `other_hz`:
/// after the leading silence, the tone holds most of the energy of a
/// one-second window and the other tone next to none of it.
fn assert_heard(pcm: &Pcm, want_hz: f64, other_hz: f64, who: &str) {
    assert_eq!(pcm.rate, 8_000, "{who}'s recording should be 8 kHz");
    let heard = skip_silence(&pcm.samples, SILENCE);
    let Some(window) = heard.get(SETTLE..SETTLE + WINDOW) else {
        panic!(
            "{who} received {} samples, {} of them after leading silence: \
             less than {} s of audio came through",
            pcm.samples.len(),
            heard.len(),
            (SETTLE + WINDOW) / 8_000
        );
    };
    let want = tone_share(window, pcm.rate, want_hz);
    let other = tone_share(window, pcm.rate, other_hz);
    assert!(
        want > 0.8 && other < 0.01,
        "{who} should hear {want_hz} Hz: {:.1}% of the energy is at {want_hz} Hz, \
         {:.1}% at {other_hz} Hz",
        want * 100.0,
        other * 100.0
    );
}

/// The session's only call once it has ended.
async fn finished_call(ml: &Maskline, session_id: &str) -> Result<Value> {
    wait_for(
        "the session's call to be completed",
        Duration::from_secs(5),
        || async {
            let s = ml.api().get_session(session_id).await?;
            let call = s
                .get("calls")
                .and_then(Value::as_array)
                .and_then(|c| c.first())
                .filter(|c| c.get("state").and_then(Value::as_str) == Some("completed"))
                .cloned();
            Ok(call)
        },
    )
    .await
}

/// The first event of an incoming call: `CALL_INCOMING`, or with
/// `answermode=auto` (where baresip 1.0 answers without that event)
/// `CALL_ESTABLISHED`. Its `peeruri` is the caller ID shown.
fn is_incoming_call(e: &BaresipEvent) -> bool {
    e.direction.as_deref() == Some("incoming")
        && matches!(e.kind.as_str(), "CALL_INCOMING" | "CALL_ESTABLISHED")
}

/// A (UDP) calls the masked number; B (TCP) auto-answers and sees only the
/// masked number; each hears the other's tone; A hangs up and the session
/// shows the call completed, hung up by A.
#[tokio::test]
async fn softphones_a_over_udp_calls_b_over_tcp_masked_with_audio_both_ways() -> Result<()> {
    bounded(TEST_LIMIT, masked_call_with_audio(false)).await
}

/// The same with baresip's default `uuid` module, whose REGISTER Contact is
/// `<sip:…;transport=tcp>;expires=300;+sip.instance="<urn:uuid:…>"` (as
/// Linphone's usually is).
#[tokio::test]
async fn softphones_with_sip_instance_ids_call_each_other() -> Result<()> {
    bounded(TEST_LIMIT, masked_call_with_audio(true)).await
}

/// Registers A (UDP) and B (TCP), has A call B through a session and checks
/// masking, audio both ways, the hang-up and the SIP traces.
async fn masked_call_with_audio(sip_instance: bool) -> Result<()> {
    let ml = maskline().await?;
    let mut a = softphone(&ml, "a", 0, TONE_A_HZ, sip_instance).await?;
    let mut b = softphone(&ml, "b", 1, TONE_B_HZ, sip_instance).await?;
    register_ok(
        &mut a,
        &account(&ml, PARTY_A, PASSWORD_A, SipTransport::Udp),
    )
    .await?;
    register_ok(
        &mut b,
        &account(&ml, PARTY_B, PASSWORD_B, SipTransport::Tcp),
    )
    .await?;
    let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
    let masked = session.masked_number.clone();

    a.dial(&format!("sip:{masked}@{}", ml.sip_addr())).await?;
    let incoming = b
        .wait_event("B's incoming call", CALL_STEP, is_incoming_call)
        .await?;
    let shown = incoming.peer_uri.clone().unwrap_or_default();
    assert_eq!(
        uri_user(&shown),
        Some(digits(&masked)),
        "B should see the masked number as caller: {:?}",
        incoming.json
    );
    assert_absent(
        incoming.json.to_string().as_bytes(),
        PARTY_A,
        "B's incoming-call event",
    );
    a.wait_call_event("CALL_ESTABLISHED", CALL_STEP).await?;
    b.wait_call_event("CALL_ESTABLISHED", CALL_STEP).await?;

    // Pace the audio: both tones flow for this long.
    tokio::time::sleep(TALK_FOR).await;
    a.hangup().await?;
    a.wait_call_event("CALL_CLOSED", CALL_STEP).await?;
    b.wait_call_event("CALL_CLOSED", CALL_STEP).await?;

    assert_heard(&a.received_audio()?, TONE_B_HZ, TONE_A_HZ, "A");
    assert_heard(&b.received_audio()?, TONE_A_HZ, TONE_B_HZ, "B");

    let call = finished_call(&ml, &session.id).await?;
    let field = |name: &str| call.get(name).and_then(Value::as_str);
    assert_eq!(field("hangup_by"), Some("a"), "{call}");
    assert_eq!(field("caller"), Some(PARTY_A), "{call}");
    assert_eq!(field("callee"), Some(PARTY_B), "{call}");

    // The SIP traces: A authenticated its INVITE after a 407; B was
    // called through its TCP connection; neither saw the other's number.
    let a_log = String::from_utf8_lossy(&a.log_bytes()).into_owned();
    let b_log = String::from_utf8_lossy(&b.log_bytes()).into_owned();
    assert!(
        a_log.contains("SIP/2.0 407"),
        "A's INVITE should have been challenged with 407:\n{a_log}"
    );
    let invite_path = transport_of(&b_log, "INVITE sip:");
    assert!(
        invite_path.is_some_and(|l| l.starts_with("TCP ")),
        "B's INVITE should come over its TCP connection, came {invite_path:?}:\n{b_log}"
    );
    assert_absent(b_log.as_bytes(), PARTY_A, "B's softphone log and SIP trace");
    assert_absent(a_log.as_bytes(), PARTY_B, "A's softphone log and SIP trace");
    Ok(())
}

/// A registration outlives a restart of Maskline: B registered before it is
/// still called at its contact after it, without registering again.
#[tokio::test]
async fn softphone_registration_survives_a_restart() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = maskline().await?;
        let mut a = softphone(&ml, "a", 0, TONE_A_HZ, false).await?;
        let mut b = softphone(&ml, "b", 1, TONE_B_HZ, false).await?;
        register_ok(
            &mut a,
            &account(&ml, PARTY_A, PASSWORD_A, SipTransport::Udp),
        )
        .await?;
        register_ok(
            &mut b,
            &account(&ml, PARTY_B, PASSWORD_B, SipTransport::Udp),
        )
        .await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let status = ml.restart().await?;
        assert!(
            status.success(),
            "SIGTERM should end maskline cleanly, got {status}"
        );

        a.dial(&format!("sip:{}@{}", session.masked_number, ml.sip_addr()))
            .await?;
        b.wait_call_event("CALL_ESTABLISHED", CALL_STEP).await?;
        a.wait_call_event("CALL_ESTABLISHED", CALL_STEP).await?;
        b.hangup().await?;
        a.wait_call_event("CALL_CLOSED", CALL_STEP).await?;
        let call = finished_call(&ml, &session.id).await?;
        assert_eq!(
            call.get("hangup_by").and_then(Value::as_str),
            Some("b"),
            "{call}"
        );
        let registers = String::from_utf8_lossy(&b.log_bytes())
            .lines()
            .filter(|l| l.starts_with("REGISTER "))
            .count();
        assert_eq!(
            registers, 2,
            "B should have registered once (challenge + answer)"
        );
        Ok(())
    })
    .await
}

/// A wrong password gets no registration, and no call either: the INVITE's
/// 407 challenge fails the same way.
#[tokio::test]
async fn softphone_with_a_wrong_password_is_not_registered() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = maskline().await?;
        let mut a = softphone(&ml, "a", 0, TONE_A_HZ, false).await?;
        let ev = a
            .register(&account(
                &ml,
                PARTY_A,
                "not-the-password",
                SipTransport::Udp,
            ))
            .await?;
        assert_eq!(
            ev.kind, "REGISTER_FAIL",
            "a wrong password must not register: {:?}",
            ev.json
        );

        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        a.dial(&format!("sip:{}@{}", session.masked_number, ml.sip_addr()))
            .await?;
        let closed = a.wait_call_event("CALL_CLOSED", CALL_STEP).await?;
        assert!(
            a.events().iter().all(|e| e.kind != "CALL_ESTABLISHED"),
            "the call must not be answered: {:?}",
            a.events()
        );
        assert!(
            closed.param.as_deref().is_some_and(|p| p.contains("407")),
            "the INVITE should fail on its 407 challenge: {:?}",
            closed.json
        );
        let s = ml.api().get_session(&session.id).await?;
        assert_eq!(s.get("call_count").and_then(Value::as_u64), Some(0), "{s}");
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_is_read_from_the_trace() {
        let log = "#\nUDP 127.0.0.1:5 -> 127.0.0.1:6\nREGISTER sip:x SIP/2.0\n\
                   #\nTCP 127.0.0.1:6 -> 127.0.0.1:7\nINVITE sip:y SIP/2.0\n";
        assert_eq!(
            transport_of(log, "INVITE sip:"),
            Some("TCP 127.0.0.1:6 -> 127.0.0.1:7")
        );
        assert_eq!(
            transport_of(log, "REGISTER "),
            Some("UDP 127.0.0.1:5 -> 127.0.0.1:6")
        );
        assert_eq!(transport_of(log, "BYE "), None);
        assert_eq!(uri_user("sip:+15550000001@127.0.0.1"), Some("15550000001"));
    }
}
