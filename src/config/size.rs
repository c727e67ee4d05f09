//! Byte sizes and counts: `512`, `512K`, `2M`, `2GB`, `1.5G`, `1T` (binary multiples of
//! 1024), or `unlimited` / `infinity`.

use super::schema::{CpuMax, Size};

/// What every size error says the user should have written.
pub const EXPECTED: &str = "a size like 512, 64K, 512M, 2G or unlimited";

/// A value that is not a valid size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {}", EXPECTED)]
pub struct SizeError;

/// Parse a size or count written as text.
pub fn parse(s: &str) -> Result<Size, SizeError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if lower == "unlimited" || lower == "infinity" {
        return Ok(Size::Unlimited);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(SizeError);
    }
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(SizeError),
    };
    if !number.contains('.') {
        let n: u64 = number.parse().map_err(|_| SizeError)?;
        return n
            .checked_mul(1u64 << shift)
            .map(Size::Value)
            .ok_or(SizeError);
    }
    let n: f64 = number.parse().map_err(|_| SizeError)?;
    let bytes = (n * (1u64 << shift) as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(SizeError);
    }
    Ok(Size::Value(bytes as u64))
}

/// A size given as a YAML integer (bytes or a plain count).
pub(crate) fn from_int(n: i64) -> Result<Size, SizeError> {
    u64::try_from(n).map(Size::Value).map_err(|_| SizeError)
}

/// What every `cpu_max` error says the user should have written.
pub const CPU_MAX_EXPECTED: &str =
    "\"<quota|max> <period>\" in microseconds like \"200000 100000\", or a percentage like \"50%\"";

/// The cgroup v2 default period (100ms), used for percentages and a lone quota.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// Parse `cpu_max`: `"200000 100000"`, `"max 100000"`, `"max"`, `"200000"` or `"50%"`.
pub fn parse_cpu_max(s: &str) -> Result<CpuMax, SizeError> {
    let t = s.trim();
    if let Some(pct) = t.strip_suffix('%') {
        let p: f64 = pct.trim().parse().map_err(|_| SizeError)?;
        // Above 100% means more than one CPU, which cgroups allow.
        if !p.is_finite() || p <= 0.0 || p > 100_000.0 {
            return Err(SizeError);
        }
        let quota = (DEFAULT_PERIOD_US as f64 * p / 100.0).round() as u64;
        return Ok(CpuMax {
            quota_us: Some(quota.max(1000)),
            period_us: DEFAULT_PERIOD_US,
        });
    }
    let mut parts = t.split_whitespace();
    let quota = parts.next().ok_or(SizeError)?;
    let period = match parts.next() {
        Some(p) => p.parse::<u64>().map_err(|_| SizeError)?,
        None => DEFAULT_PERIOD_US,
    };
    if parts.next().is_some() || !(1000..=1_000_000).contains(&period) {
        return Err(SizeError);
    }
    let quota_us = if quota == "max" {
        None
    } else {
        let q = quota.parse::<u64>().map_err(|_| SizeError)?;
        if q < 1000 {
            return Err(SizeError);
        }
        Some(q)
    };
    Ok(CpuMax {
        quota_us,
        period_us: period,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_forms() {
        assert_eq!(parse("512"), Ok(Size::Value(512)));
        assert_eq!(parse("512K"), Ok(Size::Value(512 * 1024)));
        assert_eq!(parse("2M"), Ok(Size::Value(2 << 20)));
        assert_eq!(parse("2GB"), Ok(Size::Value(2 << 30)));
        assert_eq!(parse("2gib"), Ok(Size::Value(2 << 30)));
        assert_eq!(parse("1.5G"), Ok(Size::Value(3 << 29)));
        assert_eq!(parse("1T"), Ok(Size::Value(1 << 40)));
        assert_eq!(parse("100B"), Ok(Size::Value(100)));
        assert_eq!(parse("unlimited"), Ok(Size::Unlimited));
        assert_eq!(parse("Infinity"), Ok(Size::Unlimited));
        assert_eq!(from_int(65536), Ok(Size::Value(65536)));
    }

    #[test]
    fn cpu_max_forms() {
        let c = |q, p| {
            Ok(CpuMax {
                quota_us: q,
                period_us: p,
            })
        };
        assert_eq!(parse_cpu_max("200000 100000"), c(Some(200_000), 100_000));
        assert_eq!(parse_cpu_max("max 100000"), c(None, 100_000));
        assert_eq!(parse_cpu_max("max"), c(None, 100_000));
        assert_eq!(parse_cpu_max("50000"), c(Some(50_000), 100_000));
        assert_eq!(parse_cpu_max("50%"), c(Some(50_000), 100_000));
        assert_eq!(parse_cpu_max("150%"), c(Some(150_000), 100_000));
        for bad in [
            "",
            "0%",
            "-5%",
            "x 100000",
            "100 100000",
            "1000 5",
            "1 2 3",
            "lots",
        ] {
            assert_eq!(parse_cpu_max(bad), Err(SizeError), "{bad:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-1",
            "1X",
            "K",
            "1.5.5G",
            ".5G",
            "lots",
            "99999999999T",
            "1 2",
        ] {
            assert_eq!(parse(bad), Err(SizeError), "{bad:?}");
        }
        assert_eq!(from_int(-1), Err(SizeError));
    }
}
