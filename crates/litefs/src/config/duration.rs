//! Go duration strings (`"10s"`, `"1m30s"`, `"500ms"`, `"1.5h"`) as LiteFS
//! reads them with `time.ParseDuration`, turned into [`std::time::Duration`].

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    input: String,
    reason: String,
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {} (expected a number with a unit \
             ns, us, ms, s, m or h, e.g. \"10s\", \"1m30s\", \"500ms\")",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseDurationError {}

/// Go's own limit: a `time.Duration` is an i64 of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string. Negative durations parse in Go but mean
/// nothing for any LiteFS setting, so they are refused here.
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let fail = |reason: String| ParseDurationError {
        input: input.to_string(),
        reason,
    };

    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(fail("empty".into()));
    }

    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(fail("a '.' without digits".into()));
            }
        } else if int_part.is_empty() {
            return Err(fail(format!("expected a number at {s:?}")));
        }

        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            return Err(fail("missing unit".into()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| fail(format!("unknown unit {unit:?}")))?;

        let overflow = || fail("too large".into());
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(scale).ok_or_else(overflow)?;
        // Digits beyond nanosecond precision cannot change the result; Go
        // drops them the same way.
        let mut frac_scale = scale;
        for digit in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * frac_scale;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
    }

    if negative && total != 0 {
        return Err(fail("negative durations are not allowed".into()));
    }
    let secs = (total / 1_000_000_000) as u64;
    let sub = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Formats like Go's `Duration.String()` ("1m30s", "500ms", "0s") so that
/// values echo back in the form users wrote them.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (value, unit) = if nanos < 1_000 {
            return format!("{nanos}ns");
        } else if nanos < 1_000_000 {
            (nanos as f64 / 1e3, "µs")
        } else {
            (nanos as f64 / 1e6, "ms")
        };
        return format!("{value}{unit}");
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let secs = (nanos % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse_duration("10s").unwrap(), ms(10_000));
        assert_eq!(parse_duration("1m30s").unwrap(), ms(90_000));
        assert_eq!(parse_duration("500ms").unwrap(), ms(500));
        assert_eq!(parse_duration("1h").unwrap(), ms(3_600_000));
        assert_eq!(parse_duration("1.5h").unwrap(), ms(5_400_000));
        assert_eq!(parse_duration(".5s").unwrap(), ms(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("-0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("+2s").unwrap(), ms(2_000));
        assert_eq!(
            parse_duration("1h2m3s4ms5us6ns").unwrap().as_nanos(),
            3_723_004_005_006
        );
        assert_eq!(parse_duration("3µs").unwrap().as_nanos(), 3_000);
        assert_eq!(parse_duration("3μs").unwrap().as_nanos(), 3_000);
        assert_eq!(parse_duration("1.0000000001s").unwrap(), ms(1_000));
    }

    #[test]
    fn refuses_bad_input_with_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("10", "missing unit"),
            ("10x", "unknown unit \"x\""),
            ("s", "expected a number"),
            (".s", "without digits"),
            ("1d", "unknown unit \"d\""),
            ("-5s", "negative"),
            ("99999999999999999999h", "too large"),
            ("3000000h", "too large"),
            ("10 s", "unknown unit \" s\""),
        ] {
            let err = parse_duration(input).unwrap_err().to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
            assert!(err.contains(&format!("{input:?}")), "{err}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(1_500)), "1.5s");
        for s in ["10s", "1m30s", "500ms", "1h0m0s", "2h3m4.5s", "7ns"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
