//! Cron schedules in standard cron syntax, evaluated with the `cron` crate.
//!
//! Users write standard cron: 5 fields (minute first) or 6 fields (seconds first), an
//! optional 7th year field, day-of-week `0`–`7` with both `0` and `7` meaning Sunday, names
//! `SUN`..`SAT`, and the `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`,
//! `@yearly`/`@annually` shorthands. The `cron` crate numbers day-of-week 1–7 from Sunday,
//! so the day-of-week field is rewritten as explicit names before it is handed over; that
//! way no number ever reaches the crate with a different meaning.
//!
//! Standard cron fires when *either* day-of-month or day-of-week matches if both are
//! restricted (`0 0 1 * MON` = the 1st and every Monday); the crate ANDs them, so such
//! expressions are split into two schedules whose instants are merged.
//!
//! Daylight saving time, in the schedule's zone:
//! - spring forward: a wall-clock time that does not exist that day (02:30 in most US zones)
//!   does not fire that day;
//! - fall back: a wall-clock time that happens twice fires once, at its first occurrence.
//!   An instant whose local wall-clock time is the second occurrence of an ambiguous time
//!   is skipped, which is the same as skipping a fire whose wall-clock time equals the
//!   previous fire's.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;

use super::reader::did_you_mean;

/// A parsed cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedules: Vec<cron::Schedule>,
    tz: Tz,
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Guard against pathological scans (for example every second during a repeated hour).
const MAX_CANDIDATES: usize = 20_000;

impl CronSchedule {
    /// Parse a standard cron expression; `timezone` is an IANA name, `None` = system zone.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<CronSchedule, String> {
        let tz = match timezone {
            Some(name) => parse_timezone(name)?,
            None => system_timezone(),
        };
        let schedules = parse_expression(expression)?;
        Ok(CronSchedule { schedules, tz })
    }

    /// The zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedules
            .iter()
            .filter_map(|s| self.next_of(s, t))
            .min()
    }

    /// The next `n` fires after `from`.
    pub fn upcoming(&self, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut t = from;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    fn next_of(&self, schedule: &cron::Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        for candidate in schedule.after(&local).take(MAX_CANDIDATES) {
            let utc = candidate.with_timezone(&Utc);
            // The crate may hand back the earlier half of an ambiguous time that is
            // already in the past.
            if utc <= t {
                continue;
            }
            if is_second_occurrence(&self.tz, &candidate) {
                continue;
            }
            return Some(utc);
        }
        None
    }
}

fn is_second_occurrence(tz: &Tz, at: &DateTime<Tz>) -> bool {
    match tz.from_local_datetime(&at.naive_local()) {
        LocalResult::Ambiguous(first, _) => first != *at,
        _ => false,
    }
}

/// An IANA zone, or an error suggesting the closest name.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name.trim()).map_err(|_| {
        let hint = did_you_mean(name.trim(), chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()));
        format!("unknown time zone {name:?} (expected an IANA name like Europe/Berlin){hint}")
    })
}

/// The system zone: `TZ` if set to a known name, else the `/etc/localtime` link, else UTC.
pub fn system_timezone() -> Tz {
    if let Ok(tz) = std::env::var("TZ") {
        let name = tz.trim_start_matches(':');
        let name = name.rsplit_once("zoneinfo/").map_or(name, |(_, n)| n);
        if let Ok(z) = Tz::from_str(name) {
            return z;
        }
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let s = target.to_string_lossy();
        if let Some((_, name)) = s.rsplit_once("zoneinfo/") {
            if let Ok(z) = Tz::from_str(name) {
                return z;
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/timezone") {
        if let Ok(z) = Tz::from_str(text.trim()) {
            return z;
        }
    }
    Tz::UTC
}

/// Translate a standard expression into one or two `cron` crate schedules.
fn parse_expression(expression: &str) -> Result<Vec<cron::Schedule>, String> {
    let six = normalize(expression)?;
    check_ranges(expression, &six)?;
    let dow = translate_dow(&six[5])?;
    let dom_restricted = !matches!(six[3].as_str(), "*" | "?");
    let dow_restricted = dow != "*";
    let build = |dom: &str, dow: &str| -> Result<cron::Schedule, String> {
        let mut fields = six.clone();
        fields[3] = dom.to_string();
        fields[5] = dow.to_string();
        cron::Schedule::from_str(&fields.join(" ")).map_err(|e| {
            // The crate's message may span lines and speak of its internal 6-field form.
            let msg = e.to_string();
            let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!("invalid cron expression {expression:?}: {}", first.trim())
        })
    };
    if dom_restricted && dow_restricted {
        // Standard cron ORs the two day fields when both are restricted.
        Ok(vec![build(&six[3], "*")?, build("*", &dow)?])
    } else {
        Ok(vec![build(&six[3], &dow)?])
    }
}

/// The fields of a standard expression with shorthands expanded and a 5-field expression given
/// its seconds: `sec min hour dom month dow [year]`. Day-of-week is still as written.
pub(crate) fn normalize(expression: &str) -> Result<Vec<String>, String> {
    let expr = expression.trim();
    let six: Vec<String> = if let Some(short) = expr.strip_prefix('@') {
        let fields = match short.to_ascii_lowercase().as_str() {
            "hourly" => "0 0 * * * *",
            "daily" | "midnight" => "0 0 0 * * *",
            "weekly" => "0 0 0 * * 0",
            "monthly" => "0 0 0 1 * *",
            "yearly" | "annually" => "0 0 0 1 1 *",
            "reboot" => return Err("@reboot is not supported; use a regular service".into()),
            _ => {
                return Err(format!(
                    "unknown shorthand {expr:?} (expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)"
                ))
            }
        };
        fields.split(' ').map(str::to_string).collect()
    } else {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        match fields.len() {
            5 => std::iter::once("0")
                .chain(fields)
                .map(str::to_string)
                .collect(),
            6 | 7 => fields.into_iter().map(str::to_string).collect(),
            n => {
                return Err(format!(
                    "expected 5 fields (minute hour day month weekday) or 6 (with seconds first), found {n}"
                ))
            }
        }
    };
    Ok(six)
}

/// Each numeric value of the first five normalized fields (seconds, minute, hour, day of
/// month, month) within its range, or an error naming the field as the user wrote it:
/// `minute 61 is out of range 0-59 (field 1 of "61 * * * *")`. Day-of-week is checked by
/// `translate_dow`; names (`JAN`) and `L`-style extensions are left to the parser.
fn check_ranges(expression: &str, six: &[String]) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
    ];
    let expr = expression.trim();
    // A 5-field expression was given its seconds: positions count from the minute.
    let user_fields = expr.split_whitespace().count();
    let shift = usize::from(!expr.starts_with('@') && user_fields == 5);
    for (i, (name, lo, hi)) in FIELDS.iter().enumerate() {
        let Some(field) = six.get(i) else { continue };
        for item in field.split(',') {
            let range = item.split('/').next().unwrap_or("");
            for v in range.split('-') {
                let Ok(n) = v.parse::<u32>() else { continue };
                if n < *lo || n > *hi {
                    let at = if expr.starts_with('@') {
                        String::new()
                    } else {
                        format!(" (field {} of {expr:?})", i + 1 - shift)
                    };
                    return Err(format!("{name} {n} is out of range {lo}-{hi}{at}"));
                }
            }
        }
    }
    Ok(())
}

/// Rewrite a standard day-of-week field (0/7 = Sunday) as names, or `*` for every day.
pub(crate) fn translate_dow(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".into());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("invalid step {s:?} in day-of-week {field:?}"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (day_number(a, field)?, day_number(b, field)?);
            if a > b {
                return Err(format!(
                    "day-of-week range {range:?} runs backwards; write it as a list"
                ));
            }
            (a, b)
        } else {
            let a = day_number(range, field)?;
            // `5/2` means "from Friday, every second day" in standard cron.
            (a, if item.contains('/') { 6.max(a) } else { a })
        };
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".into());
    }
    Ok(DAY_NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

/// 0..=7 (7 = Sunday again) from a number or a name.
fn day_number(s: &str, field: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        if n <= 7 {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let full = [
        "SUNDAY",
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
    ];
    for i in 0..7 {
        if up == DAY_NAMES[i] || up == full[i] {
            return Ok(i as u32);
        }
    }
    Err(format!(
        "invalid day of week {s:?} in {field:?} (expected 0-7 or SUN-SAT)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekdays_only() {
        let c = CronSchedule::parse("0 0 9 * * 1-5", Some("UTC")).unwrap();
        let fires = c.upcoming(utc("2026-03-01T00:00:00Z"), 10); // a Sunday
        assert_eq!(fires.len(), 10);
        for f in &fires {
            assert!(!matches!(f.weekday(), Weekday::Sat | Weekday::Sun), "{f}");
            assert_eq!(f.hour(), 9);
        }
        assert_eq!(fires[0], utc("2026-03-02T09:00:00Z"));
        assert_eq!(fires[5], utc("2026-03-09T09:00:00Z"));
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        for e in ["0 0 0 * * 0", "0 0 0 * * 7", "0 0 * * SUN", "@weekly"] {
            let c = CronSchedule::parse(e, Some("UTC")).unwrap();
            for f in c.upcoming(utc("2026-03-03T12:00:00Z"), 3) {
                assert_eq!(f.weekday(), Weekday::Sun, "{e}: {f}");
            }
        }
    }

    #[test]
    fn five_fields_and_shorthands() {
        let c = CronSchedule::parse("*/5 * * * *", Some("UTC")).unwrap();
        assert_eq!(
            c.upcoming(utc("2026-01-01T00:01:00Z"), 3),
            [
                utc("2026-01-01T00:05:00Z"),
                utc("2026-01-01T00:10:00Z"),
                utc("2026-01-01T00:15:00Z")
            ]
        );
        let d = CronSchedule::parse("@daily", Some("UTC")).unwrap();
        assert_eq!(
            d.upcoming(utc("2026-01-01T10:00:00Z"), 2),
            [utc("2026-01-02T00:00:00Z"), utc("2026-01-03T00:00:00Z")]
        );
        let h = CronSchedule::parse("@hourly", Some("UTC")).unwrap();
        assert_eq!(
            h.next_after(utc("2026-01-01T10:00:00Z")),
            Some(utc("2026-01-01T11:00:00Z"))
        );
        assert!(CronSchedule::parse("@yearly", None).is_ok());
        assert!(CronSchedule::parse("@annually", None).is_ok());
        assert!(CronSchedule::parse("@monthly", None).is_ok());
        assert!(CronSchedule::parse("@midnight", None).is_ok());
    }

    #[test]
    fn dow_translation() {
        assert_eq!(translate_dow("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(translate_dow("5-7").unwrap(), "SUN,FRI,SAT");
        assert_eq!(translate_dow("0-6").unwrap(), "*");
        assert_eq!(translate_dow("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(translate_dow("1-5/2").unwrap(), "MON,WED,FRI");
        assert_eq!(translate_dow("mon-fri").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(translate_dow("0,3,sat").unwrap(), "SUN,WED,SAT");
        assert!(translate_dow("8").is_err());
        assert!(translate_dow("FRI-MON").is_err());
        assert!(translate_dow("1/0").is_err());
    }

    #[test]
    fn dom_or_dow() {
        // The 1st of the month or any Monday.
        let c = CronSchedule::parse("0 0 1 * MON", Some("UTC")).unwrap();
        let fires = c.upcoming(utc("2026-05-30T00:00:00Z"), 3); // Saturday
        assert_eq!(
            fires,
            [
                utc("2026-06-01T00:00:00Z"), // Monday and the 1st: once
                utc("2026-06-08T00:00:00Z"),
                utc("2026-06-15T00:00:00Z")
            ]
        );
    }

    #[test]
    fn dst_fall_back_fires_once() {
        let c = CronSchedule::parse("0 30 1 * * *", Some("America/New_York")).unwrap();
        let fires = c.upcoming(utc("2027-11-06T12:00:00Z"), 3);
        // 2027-11-07 01:30 EDT = 05:30Z; the 01:30 EST repeat (06:30Z) is skipped.
        assert_eq!(
            fires,
            [
                utc("2027-11-07T05:30:00Z"),
                utc("2027-11-08T06:30:00Z"),
                utc("2027-11-09T06:30:00Z")
            ]
        );
        // Starting inside the repeated hour does not fire the repeat either.
        assert_eq!(
            c.next_after(utc("2027-11-07T06:10:00Z")),
            Some(utc("2027-11-08T06:30:00Z"))
        );
    }

    #[test]
    fn dst_spring_forward_skips_missing_time() {
        let c = CronSchedule::parse("30 2 * * *", Some("America/New_York")).unwrap();
        // 2027-03-14 02:30 does not exist in New York.
        let fires = c.upcoming(utc("2027-03-13T12:00:00Z"), 2);
        assert_eq!(
            fires,
            [utc("2027-03-15T06:30:00Z"), utc("2027-03-16T06:30:00Z")]
        );
    }

    #[test]
    fn errors() {
        assert!(CronSchedule::parse("* * *", None)
            .unwrap_err()
            .contains("found 3"));
        assert_eq!(
            CronSchedule::parse("61 * * * *", None).err().as_deref(),
            Some(r#"minute 61 is out of range 0-59 (field 1 of "61 * * * *")"#)
        );
        assert_eq!(
            CronSchedule::parse("0 9 1-32 * *", None).err().as_deref(),
            Some(r#"day of month 32 is out of range 1-31 (field 3 of "0 9 1-32 * *")"#)
        );
        assert_eq!(
            CronSchedule::parse("0 0 24 * * *", None).err().as_deref(),
            Some(r#"hour 24 is out of range 0-23 (field 3 of "0 0 24 * * *")"#)
        );
        let e = CronSchedule::parse("0 * * FOO *", None).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(CronSchedule::parse("@often", None).is_err());
        let e = CronSchedule::parse("@daily", Some("America/New_Yrok")).unwrap_err();
        assert!(e.contains("did you mean `America/New_York`?"), "{e}");
    }
}
