//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA) companding.
//!
//! Encoding follows the reference algorithm (the classic Sun `g711.c`):
//! μ-law works on 14-bit magnitudes with a bias of 33, A-law on 13-bit
//! magnitudes with the even bits inverted (`^ 0x55`). Decoding is a lookup
//! in a 256-entry table built at compile time.

/// μ-law bias on the 14-bit scale (132 on the 16-bit scale).
const ULAW_BIAS: i32 = 0x84 >> 2;
/// Largest 14-bit magnitude μ-law encodes before clipping.
const ULAW_CLIP: i32 = 8159;

/// Decoded value of every μ-law byte.
const ULAW_TABLE: [i16; 256] = build_ulaw_table();
/// Decoded value of every A-law byte.
const ALAW_TABLE: [i16; 256] = build_alaw_table();

const fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    let v = if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 };
    v as i16
}

const fn alaw_decode(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    let v = if a & 0x80 != 0 { t } else { -t };
    v as i16
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode(i as u8);
        i += 1;
    }
    table
}

/// Segment of a biased magnitude: the number of the highest set bit above
/// `base_bits` (0 when the value fits in `base_bits`), capped at 8.
#[inline]
fn segment(value: i32, base_bits: u32) -> u32 {
    let bits = 32 - (value as u32).leading_zeros();
    bits.saturating_sub(base_bits).min(8)
}

/// Decode one μ-law byte to 16-bit linear PCM.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Decode one A-law byte to 16-bit linear PCM.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

/// Encode one 16-bit linear PCM sample to μ-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment boundaries are 0x3F, 0x7F, …, 0x1FFF: 6 bits in segment 0.
    let seg = segment(v, 6);
    let code = if seg >= 8 {
        0x7F
    } else {
        ((seg << 4) as u8) | (((v >> (seg + 1)) & 0x0F) as u8)
    };
    code ^ mask
}

/// Encode one 16-bit linear PCM sample to A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    // Segment boundaries are 0x1F, 0x3F, …, 0xFFF: 5 bits in segment 0.
    let seg = segment(v, 5);
    let code = if seg >= 8 {
        0x7F
    } else if seg < 2 {
        ((seg << 4) as u8) | (((v >> 1) & 0x0F) as u8)
    } else {
        ((seg << 4) as u8) | (((v >> seg) & 0x0F) as u8)
    };
    code ^ mask
}

/// Decode a μ-law payload, appending the samples to `out`.
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| ulaw_to_linear(b)));
}

/// Decode an A-law payload, appending the samples to `out`.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| alaw_to_linear(b)));
}

/// Encode samples to μ-law, appending one byte per sample to `out`.
pub fn encode_ulaw(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| linear_to_ulaw(s)));
}

/// Encode samples to A-law, appending one byte per sample to `out`.
pub fn encode_alaw(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| linear_to_alaw(s)));
}

/// Convert a μ-law payload to A-law in place of `out` (appended).
pub fn ulaw_to_alaw(payload: &[u8], out: &mut Vec<u8>) {
    out.extend(payload.iter().map(|&b| linear_to_alaw(ulaw_to_linear(b))));
}

/// Convert an A-law payload to μ-law (appended to `out`).
pub fn alaw_to_ulaw(payload: &[u8], out: &mut Vec<u8>) {
    out.extend(payload.iter().map(|&b| linear_to_ulaw(alaw_to_linear(b))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7F is μ-law's negative zero; it decodes to 0 = 0xFF.
            if code == 0x7F {
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, code, "μ-law {code:#04x}");
            }
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        for s in i16::MIN..=i16::MAX {
            let mag = i32::from(s).abs();
            // Quantisation step of the segment holding `s`, plus clipping
            // above the top code.
            let u_err = (i32::from(ulaw_to_linear(linear_to_ulaw(s))) - i32::from(s)).abs();
            let u_bound = if mag > 32124 {
                mag - 32124 + 4
            } else {
                mag / 16 + 8
            };
            assert!(u_err <= u_bound, "μ-law {s}: err {u_err} > {u_bound}");
            let a_err = (i32::from(alaw_to_linear(linear_to_alaw(s))) - i32::from(s)).abs();
            let a_bound = if mag > 32256 {
                mag - 32256 + 8
            } else {
                mag / 16 + 16
            };
            assert!(a_err <= a_bound, "A-law {s}: err {a_err} > {a_bound}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(s));
            let a = alaw_to_linear(linear_to_alaw(s));
            assert!(u >= prev_u && a >= prev_a, "at {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn slice_helpers_and_cross_conversion() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 397) % 20000 - 10000) as i16)
            .collect();
        let mut u = Vec::new();
        encode_ulaw(&pcm, &mut u);
        let mut back = Vec::new();
        decode_ulaw(&u, &mut back);
        assert_eq!(back.len(), 160);
        let mut a = Vec::new();
        ulaw_to_alaw(&u, &mut a);
        let mut a_pcm = Vec::new();
        decode_alaw(&a, &mut a_pcm);
        for ((&x, &y), &orig) in back.iter().zip(&a_pcm).zip(&pcm) {
            let step = i32::from(orig).abs() / 8 + 32;
            assert!((i32::from(x) - i32::from(y)).abs() <= step);
        }
        let mut a2 = Vec::new();
        encode_alaw(&pcm, &mut a2);
        let mut u2 = Vec::new();
        alaw_to_ulaw(&a2, &mut u2);
        assert_eq!(u2.len(), 160);
    }
}
