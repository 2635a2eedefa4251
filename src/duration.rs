//! Durations written the way Go's `time.ParseDuration` reads them (`300ms`,
//! `1.5s`, `2m30s`), because consul-template users already write them so.
//! One extension: a bare integer is a number of seconds (`5` = `5s`).
//! Negative durations are rejected: nothing here waits a negative time.
//! This module only parses; which flag a duration belongs to, and what range
//! it must fall in, is the caller's business.

use std::time::Duration;

use thiserror::Error;

/// Why a string is not a duration. The messages are fragments meant to follow
/// the flag and value that failed, so they do not repeat the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration")]
    Empty,
    /// A leading `-`.
    #[error("durations cannot be negative")]
    Negative,
    /// Something other than numbers and units, such as `abc` or `.s`.
    #[error("expected a number and a unit, like 5s, 500ms or 1m30s")]
    Invalid,
    /// A number that is not the whole input and has no unit, such as `1.5`.
    #[error("missing unit (use ns, us, ms, s, m or h)")]
    MissingUnit,
    /// A unit Go does not know, such as `5d`.
    #[error("unknown unit {0:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    /// More nanoseconds than fit in 64 bits (about 584 years).
    #[error("duration is too large")]
    Overflow,
}

/// Parses a Go-style duration: a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), or `0`,
/// or a bare integer number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let unsigned = match text.as_bytes().first() {
        None => return Err(DurationError::Empty),
        Some(b'-') => return Err(DurationError::Negative),
        Some(b'+') => &text[1..],
        Some(_) => text,
    };
    if unsigned.is_empty() {
        return Err(DurationError::Invalid);
    }
    if unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return unsigned
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Overflow);
    }

    let mut rest = unsigned;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (nanos, after) = component(rest)?;
        total = total.checked_add(nanos).ok_or(DurationError::Overflow)?;
        rest = after;
    }
    Ok(Duration::from_nanos(total))
}

/// Parses one `<number>[.<fraction>]<unit>` from the front of `text`,
/// returning its length in nanoseconds and what follows it.
fn component(text: &str) -> Result<(u64, &str), DurationError> {
    let (whole, rest) = split_digits(text);
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(after_dot) => split_digits(after_dot),
        None => ("", rest),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(DurationError::Invalid);
    }
    let unit_len = rest
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_len);
    if unit.is_empty() {
        return Err(DurationError::MissingUnit);
    }
    let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit(unit.to_owned()))?;

    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| DurationError::Overflow)?
    };
    let mut nanos = whole
        .checked_mul(unit_nanos)
        .ok_or(DurationError::Overflow)?;
    nanos = nanos
        .checked_add(fraction_nanos(fraction, unit_nanos))
        .ok_or(DurationError::Overflow)?;
    Ok((nanos, rest))
}

/// Splits `text` after its leading ASCII digits.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// `0.<digits>` of a unit, in nanoseconds, truncated. Digits past the 19th
/// cannot add a whole nanosecond to any unit up to an hour, so they are dropped.
fn fraction_nanos(digits: &str, unit_nanos: u64) -> u64 {
    let (numerator, denominator) = digits.bytes().take(19).fold((0u128, 1u128), |(n, d), b| {
        (n * 10 + u128::from(b - b'0'), d * 10)
    });
    // numerator < denominator, so the quotient is below unit_nanos and fits.
    u64::try_from(numerator * u128::from(unit_nanos) / denominator).unwrap_or(u64::MAX)
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_form_go_and_consul_template_users_write() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("5", Duration::from_secs(5)),
            ("300ms", Duration::from_millis(300)),
            ("1.5s", Duration::from_millis(1_500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("2m30s", Duration::from_secs(150)),
            ("1h", Duration::from_secs(3_600)),
            ("1h2m3s4ms5us6ns", Duration::new(3_723, 4_005_006)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("250ns", Duration::from_nanos(250)),
            ("1.000000001s", Duration::new(1, 1)),
            (
                "0.1234567890123456789999h",
                Duration::from_nanos(444_444_440_444),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_non_negative_duration() {
        let cases = [
            ("", DurationError::Empty),
            ("+", DurationError::Invalid),
            ("-5s", DurationError::Negative),
            ("-0", DurationError::Negative),
            ("abc", DurationError::Invalid),
            (".s", DurationError::Invalid),
            ("5s ", DurationError::UnknownUnit("s ".to_owned())),
            ("1.5", DurationError::MissingUnit),
            ("1s5", DurationError::MissingUnit),
            ("5d", DurationError::UnknownUnit("d".to_owned())),
            ("5S", DurationError::UnknownUnit("S".to_owned())),
            ("99999999999999999999", DurationError::Overflow),
            ("99999999999999999999s", DurationError::Overflow),
            ("9999999999h", DurationError::Overflow),
            ("5000000h5000000h", DurationError::Overflow),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Err(expected), "{text:?}");
        }
    }
}
