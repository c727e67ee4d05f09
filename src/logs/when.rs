//! Points in time as `sysg logs --since/--until` takes them: a duration back from now (`10m`,
//! `2h`, `1d`, `1h30m`), an RFC 3339 time with its offset (`2026-12-05T14:00:00Z`,
//! `…+01:00`), or a local time (`2026-12-05T14:00:00`, `2026-12-05 14:00[:SS[.fff]]`,
//! `2026-12-05` for its midnight) in the machine's time zone.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};

use crate::config::duration;

/// What every malformed time is told it should have been.
pub const EXPECTED: &str = "expected a duration back from now (10m, 2h, 1d), a local time \
(2026-12-05T14:00:00, 2026-12-05 14:00 or 2026-12-05) or an RFC 3339 time \
(2026-12-05T14:00:00Z, 2026-12-05T14:00:00+01:00)";

/// A time that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not one of the accepted forms.
    #[error("{EXPECTED}")]
    Malformed,
    /// A local time skipped by a daylight saving change.
    #[error("{0} does not exist in the local time zone (skipped by a daylight saving change)")]
    Skipped(String),
    /// A duration reaching before any representable time.
    #[error("{0} ago is too far back")]
    TooFar(String),
}

/// A time window; either end may be open. Both ends are inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// Neither end is set.
    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// `t` is within the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// Parse `text` against the clock and the machine's time zone (clap's value parser).
pub fn parse_when(text: &str) -> Result<DateTime<Utc>, TimeError> {
    parse_when_at(text, Utc::now(), &chrono::Local)
}

/// Parse `text` with `now` as the present and `tz` as the local time zone.
pub fn parse_when_at<Tz: TimeZone>(
    text: &str,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<DateTime<Utc>, TimeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(TimeError::Malformed);
    }
    if !t.contains(['-', ':']) {
        let d = duration::parse(t).map_err(|_| TimeError::Malformed)?;
        let back = TimeDelta::from_std(d).map_err(|_| TimeError::TooFar(t.to_string()))?;
        return now
            .checked_sub_signed(back)
            .ok_or_else(|| TimeError::TooFar(t.to_string()));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    const LOCAL: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    let naive = LOCAL
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or(TimeError::Malformed)?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Ok(dt.with_timezone(&Utc)),
        // Repeated by a change back: the first of the two.
        LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        LocalResult::None => Err(TimeError::Skipped(t.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn utc(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(d) => d.with_timezone(&Utc),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn at(s: &str) -> Result<DateTime<Utc>, TimeError> {
        // The local zone of these tests is UTC+01:00.
        let tz = FixedOffset::east_opt(3600).expect("offset");
        parse_when_at(s, utc("2026-12-05T15:00:00Z"), &tz)
    }

    #[test]
    fn durations_go_back_from_now() {
        assert_eq!(at("10m"), Ok(utc("2026-12-05T14:50:00Z")));
        assert_eq!(at("2h"), Ok(utc("2026-12-05T13:00:00Z")));
        assert_eq!(at("1d"), Ok(utc("2026-12-04T15:00:00Z")));
        assert_eq!(at(" 1h30m "), Ok(utc("2026-12-05T13:30:00Z")));
        assert_eq!(at("90"), Ok(utc("2026-12-05T14:58:30Z")), "bare seconds");
        assert_eq!(at("500ms"), Ok(utc("2026-12-05T14:59:59.5Z")));
    }

    #[test]
    fn rfc3339_keeps_its_offset() {
        assert_eq!(at("2026-12-05T14:00:00Z"), Ok(utc("2026-12-05T14:00:00Z")));
        assert_eq!(
            at("2026-12-05T14:00:00.250+02:00"),
            Ok(utc("2026-12-05T12:00:00.25Z"))
        );
    }

    #[test]
    fn local_times_are_in_the_local_zone() {
        let want = Ok(utc("2026-12-05T13:00:00Z"));
        for s in [
            "2026-12-05T14:00:00",
            "2026-12-05 14:00:00",
            "2026-12-05T14:00",
            "2026-12-05 14:00",
        ] {
            assert_eq!(at(s), want, "{s}");
        }
        assert_eq!(
            at("2026-12-05 14:00:00.5"),
            Ok(utc("2026-12-05T13:00:00.5Z"))
        );
        assert_eq!(at("2026-12-05"), Ok(utc("2026-12-04T23:00:00Z")));
    }

    #[test]
    fn a_local_time_skipped_by_daylight_saving_is_refused() {
        let tz: chrono_tz::Tz = chrono_tz::Europe::Berlin;
        let now = utc("2026-12-05T15:00:00Z");
        assert_eq!(
            parse_when_at("2026-03-29 02:30", now, &tz),
            Err(TimeError::Skipped("2026-03-29 02:30".into()))
        );
        // Repeated in October: the first (summer time) one.
        assert_eq!(
            parse_when_at("2026-10-25 02:30", now, &tz),
            Ok(utc("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn malformed_times_are_refused_with_the_forms_accepted() {
        for s in [
            "",
            "yesterday",
            "10x",
            "-5m",
            "2026-13-05",
            "2026-12-05 25:00",
            "14:00",
            "2026-12-05T14",
            "2026/12/05",
        ] {
            assert_eq!(at(s), Err(TimeError::Malformed), "{s:?}");
        }
        assert!(TimeError::Malformed.to_string().contains("10m, 2h, 1d"));
        // Beyond a hundred years back is not a duration the parser takes.
        assert_eq!(at("999999d"), Err(TimeError::Malformed));
    }

    #[test]
    fn windows_are_inclusive_and_may_be_open() {
        let w = Window {
            since: Some(utc("2026-12-05T14:00:00Z")),
            until: Some(utc("2026-12-05T15:00:00Z")),
        };
        assert!(!w.is_open());
        assert!(w.contains(utc("2026-12-05T14:00:00Z")));
        assert!(w.contains(utc("2026-12-05T15:00:00Z")));
        assert!(!w.contains(utc("2026-12-05T13:59:59.999Z")));
        assert!(!w.contains(utc("2026-12-05T15:00:00.001Z")));
        assert!(Window::default().is_open());
        assert!(Window::default().contains(DateTime::<Utc>::MIN_UTC));
    }
}
