//! Figures for people: durations as the status table and cron summaries show them.

/// `1h02m`, `3m04s`, `12s`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5.2), "5s");
        assert_eq!(human_duration(65.0), "1m05s");
        assert_eq!(human_duration(3700.0), "1h01m");
        assert_eq!(human_duration(90000.0), "1d01h");
    }
}
