//! Q.850 release causes and their mapping to and from SIP (RFC 3398).
//!
//! Causes carry FreeSWITCH-style names (`NORMAL_CLEARING`, `USER_BUSY`, …)
//! because those are what the control API accepts and reports.
//!
//! Two names are not Q.850 causes of their own:
//! - [`ORIGINATOR_CANCEL`] has code **487**, as in FreeSWITCH: the caller
//!   cancelled before answer. Its number is a SIP status, so its `Reason`
//!   header uses the `SIP` protocol (`SIP;cause=487;…`, RFC 3326).
//! - [`MEDIA_TIMEOUT`] (FreeSWITCH's name for "no RTP for too long") uses
//!   Q.850 **102** (recovery on timer expiry): it is a timer that fired, and
//!   102 is what a Q.850-only peer understands. [`by_code`]`(102)` returns
//!   [`RECOVERY_ON_TIMER_EXPIRE`]; [`parse_reason`] returns `MEDIA_TIMEOUT`
//!   when the header's `text` names it.

use std::fmt;

/// A Q.850 cause: number and FreeSWITCH-style name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cause {
    /// Q.850 cause value (1–127), or 487 for [`ORIGINATOR_CANCEL`].
    pub code: u16,
    /// Upper-case name, e.g. `NORMAL_CLEARING`.
    pub name: &'static str,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Declares one `pub const` per cause (name = identifier) and the lookup table.
macro_rules! causes {
    ($($(#[$doc:meta])* $ident:ident = $code:literal,)*) => {
        $(
            $(#[$doc])*
            pub const $ident: Cause = Cause { code: $code, name: stringify!($ident) };
        )*
        /// Every canonical cause, one per code.
        const TABLE: &[Cause] = &[$($ident),*];
    };
}

causes! {
    /// 1: the number is not assigned.
    UNALLOCATED_NUMBER = 1,
    /// 2: no route to the specified transit network.
    NO_ROUTE_TRANSIT_NET = 2,
    /// 3: no route to destination.
    NO_ROUTE_DESTINATION = 3,
    /// 6: channel unacceptable.
    CHANNEL_UNACCEPTABLE = 6,
    /// 7: call awarded and being delivered in an established channel.
    CALL_AWARDED_DELIVERED = 7,
    /// 16: normal call clearing (a party hung up).
    NORMAL_CLEARING = 16,
    /// 17: user busy.
    USER_BUSY = 17,
    /// 18: no user responding (nothing answered the alerting request).
    NO_USER_RESPONSE = 18,
    /// 19: no answer from the user (alerted, not answered).
    NO_ANSWER = 19,
    /// 20: subscriber absent.
    SUBSCRIBER_ABSENT = 20,
    /// 21: call rejected.
    CALL_REJECTED = 21,
    /// 22: number changed.
    NUMBER_CHANGED = 22,
    /// 23: redirection to a new destination.
    REDIRECTION_TO_NEW_DESTINATION = 23,
    /// 25: exchange routing error (loop, too many hops).
    EXCHANGE_ROUTING_ERROR = 25,
    /// 27: destination out of order.
    DESTINATION_OUT_OF_ORDER = 27,
    /// 28: invalid number format (address incomplete).
    INVALID_NUMBER_FORMAT = 28,
    /// 29: facility rejected.
    FACILITY_REJECTED = 29,
    /// 30: response to STATUS ENQUIRY.
    RESPONSE_TO_STATUS_ENQUIRY = 30,
    /// 31: normal, unspecified.
    NORMAL_UNSPECIFIED = 31,
    /// 34: no circuit/channel available.
    NORMAL_CIRCUIT_CONGESTION = 34,
    /// 38: network out of order.
    NETWORK_OUT_OF_ORDER = 38,
    /// 41: temporary failure.
    NORMAL_TEMPORARY_FAILURE = 41,
    /// 42: switching equipment congestion.
    SWITCH_CONGESTION = 42,
    /// 43: access information discarded.
    ACCESS_INFO_DISCARDED = 43,
    /// 44: requested circuit/channel not available.
    REQUESTED_CHAN_UNAVAIL = 44,
    /// 45: pre-empted.
    PRE_EMPTED = 45,
    /// 47: resource unavailable, unspecified (Q.850 name; FreeSWITCH has none).
    RESOURCE_UNAVAILABLE = 47,
    /// 50: requested facility not subscribed.
    FACILITY_NOT_SUBSCRIBED = 50,
    /// 52: outgoing calls barred.
    OUTGOING_CALL_BARRED = 52,
    /// 54: incoming calls barred.
    INCOMING_CALL_BARRED = 54,
    /// 57: bearer capability not authorized.
    BEARERCAPABILITY_NOTAUTH = 57,
    /// 58: bearer capability not presently available.
    BEARERCAPABILITY_NOTAVAIL = 58,
    /// 63: service or option not available, unspecified.
    SERVICE_UNAVAILABLE = 63,
    /// 65: bearer capability not implemented.
    BEARERCAPABILITY_NOTIMPL = 65,
    /// 66: channel type not implemented.
    CHAN_NOT_IMPLEMENTED = 66,
    /// 69: requested facility not implemented.
    FACILITY_NOT_IMPLEMENTED = 69,
    /// 79: service or option not implemented, unspecified.
    SERVICE_NOT_IMPLEMENTED = 79,
    /// 81: invalid call reference value.
    INVALID_CALL_REFERENCE = 81,
    /// 88: incompatible destination (e.g. no common codec).
    INCOMPATIBLE_DESTINATION = 88,
    /// 95: invalid message, unspecified.
    INVALID_MSG_UNSPECIFIED = 95,
    /// 96: mandatory information element is missing.
    MANDATORY_IE_MISSING = 96,
    /// 97: message type non-existent or not implemented.
    MESSAGE_TYPE_NONEXIST = 97,
    /// 98: message not compatible with call state.
    WRONG_MESSAGE = 98,
    /// 99: information element non-existent or not implemented.
    IE_NONEXIST = 99,
    /// 100: invalid information element contents.
    INVALID_IE_CONTENTS = 100,
    /// 101: message not compatible with call state.
    WRONG_CALL_STATE = 101,
    /// 102: recovery on timer expiry.
    RECOVERY_ON_TIMER_EXPIRE = 102,
    /// 103: parameter non-existent or not implemented, passed on.
    MANDATORY_IE_LENGTH_ERROR = 103,
    /// 111: protocol error, unspecified.
    PROTOCOL_ERROR = 111,
    /// 127: interworking, unspecified.
    INTERWORKING = 127,
    /// 487 (FreeSWITCH, not Q.850): the caller cancelled before answer.
    ORIGINATOR_CANCEL = 487,
}

/// FreeSWITCH's media-timeout cause, carried as Q.850 102 (see module docs).
pub const MEDIA_TIMEOUT: Cause = Cause {
    code: 102,
    name: "MEDIA_TIMEOUT",
};

/// Names that share a code with a canonical cause.
const ALIASES: &[Cause] = &[MEDIA_TIMEOUT];

/// Look a cause up by name (ASCII case-insensitive), aliases included.
pub fn by_name(name: &str) -> Option<Cause> {
    TABLE
        .iter()
        .chain(ALIASES)
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .copied()
}

/// Look a cause up by code; returns the canonical name for that code.
pub fn by_code(code: u16) -> Option<Cause> {
    TABLE.iter().find(|c| c.code == code).copied()
}

/// RFC 3398 §7.2.4.1 (ISUP cause → SIP status), used when Maskline ends a
/// leg that has not been answered with `cause`.
///
/// On an established dialog a cause always means BYE (with a `Reason`
/// header); the status is only for rejecting an unanswered INVITE. RFC 3398
/// maps 16 NORMAL_CLEARING to "BYE, no status", so before answer it is
/// rejected with 480, as FreeSWITCH does. Deviations from the RFC table:
/// 29 → 501 (the RFC's "510" is an erratum), 88 INCOMPATIBLE_DESTINATION →
/// 488 (RFC: 503; 488 is what SIP peers and FreeSWITCH use for "no common
/// media"), 19 NO_ANSWER → 480, 487 ORIGINATOR_CANCEL → 487. Codes not in
/// the table fall back by Q.850 class.
pub fn sip_status_for(cause: Cause) -> u16 {
    match cause.code {
        1..=3 | 26 => 404,
        16 | 19 | 20 | 31 => 480,
        17 => 486,
        18 => 408,
        21 | 55 | 57 | 87 => 403,
        22 | 23 => 410,
        27 => 502,
        28 => 484,
        29 | 79 => 501,
        34 | 38 | 41 | 42 | 47 | 58 => 503,
        65 | 70 | 88 => 488,
        102 => 504,
        111 | 127 => 500,
        487 => 487,
        // Fallback by Q.850 class.
        0..=31 => 480,
        32..=63 => 503,
        64..=79 => 501,
        _ => 500,
    }
}

/// RFC 3398 §8.2.6.1 (SIP status → ISUP cause), used when a far leg fails.
///
/// Deviations: 487 → [`ORIGINATOR_CANCEL`] (the RFC has no mapping; in
/// practice 487 means the INVITE was cancelled), 488 → 127 and 606 → 58
/// (the RFC defers both to the Warning header). 607 Unwanted and 608
/// Rejected → 21. Unknown codes are treated as their class's `x00`
/// (RFC 3261 §8.1.3.2); 1xx/2xx → NORMAL_CLEARING, 3xx (redirects are not
/// followed) → REDIRECTION_TO_NEW_DESTINATION, anything outside 100–699 →
/// INTERWORKING.
pub fn cause_for_sip_status(status: u16) -> Cause {
    match status {
        400 | 481 | 500 | 503 => NORMAL_TEMPORARY_FAILURE,
        401..=403 | 407 | 603 | 607 | 608 => CALL_REJECTED,
        404 | 485 | 604 => UNALLOCATED_NUMBER,
        405 => SERVICE_UNAVAILABLE,
        406 | 415 | 501 => SERVICE_NOT_IMPLEMENTED,
        408 | 504 => RECOVERY_ON_TIMER_EXPIRE,
        410 => NUMBER_CHANGED,
        413 | 414 | 416 | 420 | 421 | 423 | 488 | 505 | 513 => INTERWORKING,
        480 => NO_USER_RESPONSE,
        482 | 483 => EXCHANGE_ROUTING_ERROR,
        484 => INVALID_NUMBER_FORMAT,
        486 | 600 => USER_BUSY,
        487 => ORIGINATOR_CANCEL,
        502 => NETWORK_OUT_OF_ORDER,
        606 => BEARERCAPABILITY_NOTAVAIL,
        100..=299 => NORMAL_CLEARING,
        300..=399 => REDIRECTION_TO_NEW_DESTINATION,
        401..=499 => NORMAL_TEMPORARY_FAILURE, // as 400
        501..=599 => NORMAL_TEMPORARY_FAILURE, // as 500
        601..=699 => USER_BUSY,                // as 600
        _ => INTERWORKING,
    }
}

/// The `Reason` header value (RFC 3326) for `cause`:
/// `Q.850;cause=17;text="USER_BUSY"`. A cause whose code is above 127
/// (only [`ORIGINATOR_CANCEL`]) is a SIP status and is written
/// `SIP;cause=487;text="ORIGINATOR_CANCEL"`.
pub fn reason_header(cause: Cause) -> String {
    let protocol = if cause.code <= 127 { "Q.850" } else { "SIP" };
    format!("{protocol};cause={};text=\"{}\"", cause.code, cause.name)
}

/// Parse a `Reason` header value and return its Q.850 cause.
///
/// Accepts several comma-separated reasons (the first `Q.850` one wins),
/// any case and whitespace around `;` and `=`, and a quoted `text` that may
/// contain `;` or `,`. `SIP;cause=…` reasons, causes above 127 and codes
/// Maskline has no name for give `None`. When `text` names a cause with the
/// same code (e.g. `MEDIA_TIMEOUT` for 102), that name is returned.
pub fn parse_reason(value: &str) -> Option<Cause> {
    split_unquoted(value, ',').into_iter().find_map(parse_one)
}

/// One `protocol *(; param)` reason.
fn parse_one(reason: &str) -> Option<Cause> {
    let mut parts = split_unquoted(reason, ';').into_iter();
    let protocol = parts.next()?.trim();
    if !protocol.eq_ignore_ascii_case("Q.850") {
        return None;
    }
    let mut code = None;
    let mut text = None;
    for param in parts {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let val = val.trim();
        if key.eq_ignore_ascii_case("cause") {
            code = val.parse::<u16>().ok();
        } else if key.eq_ignore_ascii_case("text") {
            text = Some(val.trim_matches('"'));
        }
    }
    let code = code.filter(|c| *c <= 127)?;
    text.and_then(by_name)
        .filter(|c| c.code == code)
        .or_else(|| by_code(code))
}

/// Split on `sep` outside double quotes (backslash escapes honoured).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            out.push(s.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_are_unique_and_upper_case() {
        for (i, a) in TABLE.iter().enumerate() {
            assert!(
                a.name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{}",
                a.name
            );
            for b in TABLE.iter().skip(i + 1) {
                assert_ne!(a.code, b.code, "{} and {}", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
        }
        for alias in ALIASES {
            assert!(TABLE.iter().all(|c| c.name != alias.name));
            assert!(by_code(alias.code).is_some(), "{} has no canonical", alias);
        }
    }

    #[test]
    fn lookup_by_name_and_code() {
        let cases: &[(&str, u16)] = &[
            ("NORMAL_CLEARING", 16),
            ("USER_BUSY", 17),
            ("NO_USER_RESPONSE", 18),
            ("NO_ANSWER", 19),
            ("CALL_REJECTED", 21),
            ("UNALLOCATED_NUMBER", 1),
            ("NO_ROUTE_DESTINATION", 3),
            ("NORMAL_TEMPORARY_FAILURE", 41),
            ("RECOVERY_ON_TIMER_EXPIRE", 102),
            ("ORIGINATOR_CANCEL", 487),
            ("INVALID_NUMBER_FORMAT", 28),
            ("DESTINATION_OUT_OF_ORDER", 27),
            ("NETWORK_OUT_OF_ORDER", 38),
            ("SWITCH_CONGESTION", 42),
            ("SERVICE_UNAVAILABLE", 63),
            ("BEARERCAPABILITY_NOTAVAIL", 58),
            ("INCOMPATIBLE_DESTINATION", 88),
            ("INTERWORKING", 127),
            ("NUMBER_CHANGED", 22),
            ("NORMAL_UNSPECIFIED", 31),
            ("REQUESTED_CHAN_UNAVAIL", 44),
            ("FACILITY_REJECTED", 29),
            ("MEDIA_TIMEOUT", 102),
        ];
        for &(name, code) in cases {
            let c = by_name(name);
            assert_eq!(c.map(|c| (c.name, c.code)), Some((name, code)), "{name}");
        }
        assert_eq!(by_name("user_busy"), Some(USER_BUSY));
        assert_eq!(by_name("NOT_A_CAUSE"), None);
        assert_eq!(by_name(""), None);
        assert_eq!(by_code(16), Some(NORMAL_CLEARING));
        assert_eq!(by_code(102), Some(RECOVERY_ON_TIMER_EXPIRE));
        assert_eq!(by_code(487), Some(ORIGINATOR_CANCEL));
        assert_eq!(by_code(0), None);
        assert_eq!(by_code(26), None);
    }

    #[test]
    fn cause_to_sip_status_table() {
        let cases: &[(u16, u16)] = &[
            (1, 404),
            (2, 404),
            (3, 404),
            (16, 480),
            (17, 486),
            (18, 408),
            (19, 480),
            (20, 480),
            (21, 403),
            (22, 410),
            (23, 410),
            (26, 404),
            (27, 502),
            (28, 484),
            (29, 501),
            (31, 480),
            (34, 503),
            (38, 503),
            (41, 503),
            (42, 503),
            (47, 503),
            (55, 403),
            (57, 403),
            (58, 503),
            (65, 488),
            (70, 488),
            (79, 501),
            (87, 403),
            (88, 488),
            (102, 504),
            (111, 500),
            (127, 500),
            (487, 487),
            // Class fallbacks.
            (6, 480),
            (44, 503),
            (63, 503),
            (69, 501),
            (95, 500),
            (101, 500),
        ];
        for &(code, status) in cases {
            let cause = Cause { code, name: "T" };
            assert_eq!(sip_status_for(cause), status, "cause {code}");
        }
        assert_eq!(sip_status_for(MEDIA_TIMEOUT), 504);
    }

    #[test]
    fn sip_status_to_cause_table() {
        let cases: &[(u16, Cause)] = &[
            (200, NORMAL_CLEARING),
            (183, NORMAL_CLEARING),
            (302, REDIRECTION_TO_NEW_DESTINATION),
            (400, NORMAL_TEMPORARY_FAILURE),
            (401, CALL_REJECTED),
            (402, CALL_REJECTED),
            (403, CALL_REJECTED),
            (404, UNALLOCATED_NUMBER),
            (405, SERVICE_UNAVAILABLE),
            (406, SERVICE_NOT_IMPLEMENTED),
            (407, CALL_REJECTED),
            (408, RECOVERY_ON_TIMER_EXPIRE),
            (410, NUMBER_CHANGED),
            (413, INTERWORKING),
            (414, INTERWORKING),
            (415, SERVICE_NOT_IMPLEMENTED),
            (416, INTERWORKING),
            (420, INTERWORKING),
            (421, INTERWORKING),
            (423, INTERWORKING),
            (480, NO_USER_RESPONSE),
            (481, NORMAL_TEMPORARY_FAILURE),
            (482, EXCHANGE_ROUTING_ERROR),
            (483, EXCHANGE_ROUTING_ERROR),
            (484, INVALID_NUMBER_FORMAT),
            (485, UNALLOCATED_NUMBER),
            (486, USER_BUSY),
            (487, ORIGINATOR_CANCEL),
            (488, INTERWORKING),
            (500, NORMAL_TEMPORARY_FAILURE),
            (501, SERVICE_NOT_IMPLEMENTED),
            (502, NETWORK_OUT_OF_ORDER),
            (503, NORMAL_TEMPORARY_FAILURE),
            (504, RECOVERY_ON_TIMER_EXPIRE),
            (505, INTERWORKING),
            (513, INTERWORKING),
            (600, USER_BUSY),
            (603, CALL_REJECTED),
            (604, UNALLOCATED_NUMBER),
            (606, BEARERCAPABILITY_NOTAVAIL),
            (607, CALL_REJECTED),
            // Unknown codes fall back to their class's x00.
            (499, NORMAL_TEMPORARY_FAILURE),
            (580, NORMAL_TEMPORARY_FAILURE),
            (699, USER_BUSY),
            (0, INTERWORKING),
            (700, INTERWORKING),
        ];
        for &(status, cause) in cases {
            assert_eq!(cause_for_sip_status(status), cause, "status {status}");
        }
    }

    #[test]
    fn reason_header_format() {
        assert_eq!(
            reason_header(USER_BUSY),
            "Q.850;cause=17;text=\"USER_BUSY\""
        );
        assert_eq!(
            reason_header(MEDIA_TIMEOUT),
            "Q.850;cause=102;text=\"MEDIA_TIMEOUT\""
        );
        assert_eq!(
            reason_header(ORIGINATOR_CANCEL),
            "SIP;cause=487;text=\"ORIGINATOR_CANCEL\""
        );
    }

    #[test]
    fn reason_header_round_trips_every_q850_cause() {
        for cause in TABLE.iter().chain(ALIASES).filter(|c| c.code <= 127) {
            assert_eq!(parse_reason(&reason_header(*cause)), Some(*cause));
        }
    }

    #[test]
    fn parse_reason_variants() {
        let cases: &[(&str, Option<Cause>)] = &[
            (
                "Q.850;cause=16;text=\"NORMAL_CLEARING\"",
                Some(NORMAL_CLEARING),
            ),
            ("Q.850;cause=17", Some(USER_BUSY)),
            ("q.850 ; cause = 18 ; text=\"x\"", Some(NO_USER_RESPONSE)),
            // Text naming another code does not override the code.
            ("Q.850;cause=17;text=\"MEDIA_TIMEOUT\"", Some(USER_BUSY)),
            (
                "Q.850;cause=102;text=\"media_timeout\"",
                Some(MEDIA_TIMEOUT),
            ),
            ("Q.850;text=\"a;b,c\";cause=21", Some(CALL_REJECTED)),
            (
                "SIP;cause=200;text=\"Call completed elsewhere\", Q.850;cause=16",
                Some(NORMAL_CLEARING),
            ),
            ("SIP;cause=487;text=\"ORIGINATOR_CANCEL\"", None),
            ("SIP;cause=16", None),
            ("Q.850;cause=487", None),
            ("Q.850;cause=26", None),
            ("Q.850;cause=abc", None),
            ("Q.850;cause=", None),
            ("Q.850", None),
            ("", None),
            ("\"", None),
            ("Q.850;cause=99999999999", None),
        ];
        for &(value, want) in cases {
            assert_eq!(parse_reason(value), want, "{value:?}");
        }
    }

    #[test]
    fn split_unquoted_respects_quotes_and_escapes() {
        assert_eq!(split_unquoted("a;b", ';'), vec!["a", "b"]);
        assert_eq!(
            split_unquoted("a;\"b;c\";d", ';'),
            vec!["a", "\"b;c\"", "d"]
        );
        assert_eq!(
            split_unquoted("\"x\\\";y\";z", ';'),
            vec!["\"x\\\";y\"", "z"]
        );
        assert_eq!(split_unquoted("", ';'), vec![""]);
    }
}
