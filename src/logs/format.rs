//! The on-disk line format: `<RFC3339 UTC timestamp with milliseconds> <bytes>\n`.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// Format `ts` as written at the start of every line, e.g. `2026-11-21T23:59:59.123Z`.
pub fn format_timestamp(ts: SystemTime) -> String {
    DateTime::<Utc>::from(ts).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Split a stored line into its timestamp and its text; `None` when it has no valid stamp.
pub fn parse_line(line: &str) -> Option<(DateTime<Utc>, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let ts = DateTime::parse_from_rfc3339(stamp).ok()?;
    Some((ts.with_timezone(&Utc), rest))
}

/// Timestamp of a stored line, if it has one.
pub(crate) fn line_time(line: &str) -> Option<DateTime<Utc>> {
    parse_line(line).map(|(ts, _)| ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamp_has_milliseconds_and_z() {
        let ts = UNIX_EPOCH + Duration::from_millis(1_795_305_599_123);
        assert_eq!(format_timestamp(ts), "2026-11-21T23:59:59.123Z");
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn round_trip() {
        let ts = UNIX_EPOCH + Duration::from_millis(1_795_305_599_123);
        let line = format!("{} hello world", format_timestamp(ts));
        let (parsed, text) = parse_line(&line).expect("parses");
        assert_eq!(text, "hello world");
        assert_eq!(SystemTime::from(parsed), ts);

        let empty = format!("{} ", format_timestamp(ts));
        assert_eq!(parse_line(&empty).map(|(_, t)| t), Some(""));
        let spaced = format!("{}  two  spaces ", format_timestamp(ts));
        assert_eq!(parse_line(&spaced).map(|(_, t)| t), Some(" two  spaces "));
    }

    #[test]
    fn rejects_lines_without_stamp() {
        assert!(parse_line("").is_none());
        assert!(parse_line("hello world").is_none());
        assert!(parse_line("2026-11-21T23:59:59.123Z").is_none());
        assert!(parse_line("2026-13-21T23:59:59.123Z x").is_none());
    }
}
