//! The control API's commands on a call: `answer`, `disconnect` and the
//! state they are judged by (see `handle::Command`).
//!
//! | state | answer | hangup | disconnect |
//! |---|---|---|---|
//! | `originating` (first party ringing) | invalid | CANCEL to it | hang up |
//! | `held` (control mode, ringing) | Maskline answers (200 + relay SDP), done at the caller's ACK | final response with the cause's status and `Reason` | dial the other party (default routing) |
//! | `answered` (by the API, no B leg) | done | BYE with `Reason` | dial the other party; bridged when it answers |
//! | `bridging` (B leg ringing) | invalid | final response (or BYE if answered by the API) + CANCEL to B | hang up (`NORMAL_CLEARING`) |
//! | `bridged` | done | BYE both legs with `Reason` | hang up (`NORMAL_CLEARING`) |
//! | `ended` | invalid | no-op | invalid |

use std::time::Instant;

use super::*;

impl Call {
    /// The call's state for the control API (`held`, `bridging`,
    /// `answered`, `bridged`, `ended`).
    pub fn state_name(&self) -> &'static str {
        match self.phase {
            Phase::Originating => "originating",
            Phase::Held => "held",
            Phase::Calling => "bridging",
            Phase::Answered | Phase::Confirmed if self.b_up || self.b_tsx.is_none() => {
                if self.b_up {
                    "bridged"
                } else {
                    "answered"
                }
            }
            Phase::Answered | Phase::Confirmed => "bridging",
            Phase::Ended => "ended",
        }
    }

    /// `answer` command: Maskline answers a held caller itself.
    pub fn answer(&mut self, now: Instant) -> AnswerOutcome {
        let outcome = match self.phase {
            Phase::Held => {
                let offer = self.a_invite_body();
                let Some(body) = self.sdp_for(Leg::A, &offer) else {
                    return AnswerOutcome::Invalid("unusable SDP");
                };
                self.answered = true;
                self.control_deadline = None;
                self.send_200_to_a(body, now);
                AnswerOutcome::Pending
            }
            Phase::Answered => AnswerOutcome::Pending,
            Phase::Confirmed => AnswerOutcome::Done,
            Phase::Calling => AnswerOutcome::Invalid("bridging"),
            Phase::Originating => AnswerOutcome::Invalid("originating"),
            Phase::Ended => AnswerOutcome::Invalid("ended"),
        };
        self.pump(now);
        outcome
    }

    /// `disconnect` command: hand a held or API-answered call to the
    /// default routing (dial B), or hang up a call already bridging or
    /// bridged. Errors name the state when nothing applies.
    pub fn disconnect(&mut self, by: HangupBy, now: Instant) -> Result<(), &'static str> {
        let held_or_api_answered = self.phase == Phase::Held
            || (matches!(self.phase, Phase::Answered | Phase::Confirmed) && self.b_tsx.is_none());
        if self.phase == Phase::Ended {
            return Err("ended");
        }
        if held_or_api_answered {
            if self.start_b_leg(now).is_err() {
                self.hangup(
                    cause_named("NORMAL_TEMPORARY_FAILURE"),
                    HangupBy::System,
                    now,
                );
            }
        } else {
            self.hangup(cause_named("NORMAL_CLEARING"), by, now);
        }
        self.pump(now);
        Ok(())
    }
}
