//! Durations as users write them: `100ms`, `5s`, `2m`, `1h`, `1d`, `1.5s`, `1m30s`, or a
//! bare integer meaning seconds.

use std::time::Duration;

/// What every duration error says the user should have written.
pub const EXPECTED: &str = "a duration like 100ms, 5s, 2m, 1h or 1.5s";

/// A value that is not a valid duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {}", EXPECTED)]
pub struct DurationError;

/// Upper bound that keeps arithmetic far from overflow (about 100 years).
const MAX_SECS: f64 = 100.0 * 365.0 * 86_400.0;

/// Parse a duration.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| DurationError)?;
        return from_secs(secs as f64);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(DurationError)?;
        if num_len == 0 {
            return Err(DurationError);
        }
        let number = &rest[..num_len];
        if number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
            return Err(DurationError);
        }
        let value: f64 = number.parse().map_err(|_| DurationError)?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(DurationError),
        };
        total += value * factor;
        if total > MAX_SECS {
            return Err(DurationError);
        }
        rest = &rest[unit_len..];
    }
    from_secs(total)
}

fn from_secs(secs: f64) -> Result<Duration, DurationError> {
    if !secs.is_finite() || !(0.0..=MAX_SECS).contains(&secs) {
        return Err(DurationError);
    }
    // Round to whole milliseconds so "1.1s" is exactly 1100ms, not 1099.999...
    let millis = (secs * 1000.0).round() as u64;
    Ok(Duration::from_millis(millis))
}

/// A duration given as a YAML integer (seconds).
pub(crate) fn from_int(n: i64) -> Result<Duration, DurationError> {
    if n < 0 {
        return Err(DurationError);
    }
    from_secs(n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_millis(n))
    }

    #[test]
    fn accepts_units() {
        assert_eq!(parse("100ms"), ms(100));
        assert_eq!(parse("5s"), ms(5000));
        assert_eq!(parse("2m"), ms(120_000));
        assert_eq!(parse("1h"), ms(3_600_000));
        assert_eq!(parse("1d"), ms(86_400_000));
        assert_eq!(parse("1.5s"), ms(1500));
        assert_eq!(parse("1.1s"), ms(1100));
        assert_eq!(parse("0"), ms(0));
        assert_eq!(parse("30"), ms(30_000));
        assert_eq!(parse(" 7s "), ms(7000));
    }

    #[test]
    fn accepts_combinations() {
        assert_eq!(parse("1m30s"), ms(90_000));
        assert_eq!(parse("1h2m3s"), ms(3_723_000));
        assert_eq!(parse("1s500ms"), ms(1500));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-5s",
            "5 parsecs",
            "s",
            "5x",
            "1.5",
            "1..5s",
            ".5s",
            "5.s",
            "ms",
            "1e3s",
            "5s-",
            "999999999999d",
            "abc",
            "5 s",
        ] {
            assert_eq!(parse(bad), Err(DurationError), "{bad:?}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(from_int(3), ms(3000));
        assert_eq!(from_int(-1), Err(DurationError));
    }
}
