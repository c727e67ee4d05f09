//! Standard cron → systemd `OnCalendar=`: the pure translation that lets a systemd `.timer` run
//! a cron job.
//!
//! Only expressions that mean the same in both are translated; for the others the answer is
//! `None` and the supervisor schedules the job itself:
//! - both day-of-month and day-of-week restricted: standard cron ORs them, `OnCalendar=` ANDs;
//! - any field syntax outside `*`, `N`, `A-B`, `*/S`, `N/S`, `A-B/S` and lists of those.
//!
//! Per field, `A-B` becomes `A..B`, `*/S` becomes `0/S` (`1/S` for day and month), lists stay
//! lists, months become numbers and day-of-week becomes systemd's day names (cron's `0`/`7` are
//! Sunday). The zone is always written out, so the timer uses the job's zone rather than the
//! manager's. Both sides treat daylight saving time the same way: a wall-clock time that does
//! not exist (spring forward) does not fire, one that happens twice (fall back) fires once.

use super::cron::{normalize, translate_dow};

/// What a field holds; decides the start of `*/S` and which names are allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Seconds,
    Minutes,
    Hours,
    Day,
    Month,
    Year,
}

impl FieldKind {
    fn first(self) -> u32 {
        match self {
            FieldKind::Seconds | FieldKind::Minutes | FieldKind::Hours => 0,
            FieldKind::Day | FieldKind::Month => 1,
            // The cron crate's years start at 1970.
            FieldKind::Year => 1970,
        }
    }

    fn max(self) -> u32 {
        match self {
            FieldKind::Seconds | FieldKind::Minutes => 59,
            FieldKind::Hours => 23,
            FieldKind::Day => 31,
            FieldKind::Month => 12,
            FieldKind::Year => 2099,
        }
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// systemd's day names, in cron's order (Sunday first).
const DAYS: [(&str, &str); 7] = [
    ("SUN", "Sun"),
    ("MON", "Mon"),
    ("TUE", "Tue"),
    ("WED", "Wed"),
    ("THU", "Thu"),
    ("FRI", "Fri"),
    ("SAT", "Sat"),
];

/// The `OnCalendar=` form of a standard cron expression in `timezone` (an IANA name), or
/// `None` when systemd has no form with the same meaning.
pub fn on_calendar(expression: &str, timezone: &str) -> Option<String> {
    let fields = normalize(expression).ok()?;
    let [sec, min, hour, dom, month, dow] = [0, 1, 2, 3, 4, 5].map(|i| fields[i].as_str());
    let year = fields.get(6).map_or("*", String::as_str);
    let days = translate_dow(dow).ok()?;
    let dom_restricted = !matches!(dom, "*" | "?");
    if dom_restricted && days != "*" {
        return None;
    }
    let weekdays = if days == "*" {
        String::new()
    } else {
        let names: Option<Vec<&str>> = days
            .split(',')
            .map(|d| DAYS.iter().find(|(c, _)| *c == d).map(|(_, s)| *s))
            .collect();
        format!("{} ", names?.join(","))
    };
    let dom = if dom == "?" { "*" } else { dom };
    Some(format!(
        "{weekdays}{}-{}-{} {}:{}:{} {timezone}",
        field(year, FieldKind::Year)?,
        field(month, FieldKind::Month)?,
        field(dom, FieldKind::Day)?,
        field(hour, FieldKind::Hours)?,
        field(min, FieldKind::Minutes)?,
        field(sec, FieldKind::Seconds)?,
    ))
}

/// One field: a list of items, each translated.
fn field(text: &str, kind: FieldKind) -> Option<String> {
    let items: Option<Vec<String>> = text.split(',').map(|i| item(i, kind)).collect();
    Some(items?.join(","))
}

fn item(text: &str, kind: FieldKind) -> Option<String> {
    let (range, step) = match text.split_once('/') {
        Some((r, s)) => {
            let s: u32 = s.parse().ok().filter(|s| *s > 0)?;
            (r, Some(s))
        }
        None => (text, None),
    };
    let range = if range == "*" {
        None
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (value(a, kind)?, value(b, kind)?);
        if a > b {
            return None;
        }
        Some(format!("{a}..{b}"))
    } else {
        Some(value(range, kind)?.to_string())
    };
    Some(match (range, step) {
        (None, None) => "*".to_string(),
        (None, Some(s)) => format!("{}/{s}", kind.first()),
        (Some(r), None) => r,
        (Some(r), Some(s)) => format!("{r}/{s}"),
    })
}

/// A number in the field's range, or a month name.
fn value(text: &str, kind: FieldKind) -> Option<u32> {
    let n = match text.parse::<u32>() {
        Ok(n) => n,
        Err(_) if kind == FieldKind::Month => {
            let up = text.to_ascii_uppercase();
            let i = MONTHS.iter().position(|m| *m == up)?;
            u32::try_from(i).ok()? + 1
        }
        Err(_) => return None,
    };
    (kind.first()..=kind.max()).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CronSchedule;
    use chrono::{DateTime, NaiveDateTime, Utc};

    #[test]
    fn translations() {
        let cases = [
            (
                "0 30 9 * * Mon-Fri",
                "America/New_York",
                "Mon,Tue,Wed,Thu,Fri *-*-* 9:30:0 America/New_York",
            ),
            ("0 */5 * * * *", "UTC", "*-*-* *:0/5:0 UTC"),
            ("*/15 * * * * *", "UTC", "*-*-* *:*:0/15 UTC"),
            ("0 10-50/10 * * * *", "UTC", "*-*-* *:10..50/10:0 UTC"),
            ("0 0 0 1 1 * 2027/2", "UTC", "2027/2-1-1 0:0:0 UTC"),
            ("30 2 * * *", "Europe/Berlin", "*-*-* 2:30:0 Europe/Berlin"),
            ("0 0 * JAN,jul *", "UTC", "*-1,7-* 0:0:0 UTC"),
            ("0 0 */2 * *", "UTC", "*-*-1/2 0:0:0 UTC"),
            ("0 0 * * 0", "UTC", "Sun *-*-* 0:0:0 UTC"),
            ("0 0 * * 7", "UTC", "Sun *-*-* 0:0:0 UTC"),
            ("0 0 * * */2", "UTC", "Sun,Tue,Thu,Sat *-*-* 0:0:0 UTC"),
            ("@daily", "Asia/Tokyo", "*-*-* 0:0:0 Asia/Tokyo"),
            ("@hourly", "UTC", "*-*-* *:0:0 UTC"),
            ("@weekly", "UTC", "Sun *-*-* 0:0:0 UTC"),
            ("5/20 1,2,3 * * *", "UTC", "*-*-* 1,2,3:5/20:0 UTC"),
            ("* * * * * *", "UTC", "*-*-* *:*:* UTC"),
        ];
        for (expr, tz, want) in cases {
            assert_eq!(on_calendar(expr, tz).as_deref(), Some(want), "{expr}");
        }
    }

    #[test]
    fn untranslatable_ones_are_left_to_the_supervisor() {
        // Standard cron ORs restricted day-of-month and day-of-week; OnCalendar ANDs them.
        assert_eq!(on_calendar("0 0 1 * MON", "UTC"), None);
        assert_eq!(on_calendar("not cron", "UTC"), None);
        assert_eq!(on_calendar("0 0 L * *", "UTC"), None);
    }

    /// The instants systemd computes for `spec`, from `systemd-analyze calendar`.
    fn systemd_iterations(spec: &str, n: usize) -> Option<Vec<DateTime<Utc>>> {
        let out = std::process::Command::new("systemd-analyze")
            .args(["calendar", &format!("--iterations={n}"), spec])
            .env("TZ", "UTC")
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "systemd-analyze rejected {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let times: Vec<DateTime<Utc>> = text
            .lines()
            .filter_map(|l| {
                let (key, value) = l.split_once(": ")?;
                let key = key.trim();
                (key == "Next elapse" || key.starts_with("Iter.")).then_some(value.trim())
            })
            .map(|v| {
                NaiveDateTime::parse_from_str(v, "%a %Y-%m-%d %H:%M:%S UTC")
                    .unwrap_or_else(|e| panic!("unexpected systemd-analyze time {v:?}: {e}"))
                    .and_utc()
            })
            .collect();
        Some(times)
    }

    #[test]
    fn systemd_agrees_on_the_next_runs() {
        if std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: systemd-analyze is not installed");
            return;
        }
        let cases = [
            ("0 30 9 * * Mon-Fri", "America/New_York"),
            ("0 */5 * * * *", "UTC"),
            ("0 10-50/10 * * * *", "Europe/Berlin"),
            ("30 2 * * *", "America/New_York"),
            ("0 0 */2 * *", "UTC"),
            ("0 0 * * */2", "Asia/Tokyo"),
            ("15 4 1-7 * *", "Australia/Sydney"),
            ("0 0 * JAN,jul *", "UTC"),
            ("@weekly", "Europe/London"),
            ("0 0 12 29 2 *", "UTC"),
        ];
        for (expr, tz) in cases {
            let spec = on_calendar(expr, tz).unwrap_or_else(|| panic!("{expr} untranslated"));
            let ours = CronSchedule::parse(expr, Some(tz)).unwrap();
            // A boundary may pass between the two computations: compare again once.
            let mut last = None;
            for _ in 0..2 {
                let now = Utc::now();
                let Some(theirs) = systemd_iterations(&spec, 5) else {
                    return;
                };
                let mine = ours.upcoming(now, 5);
                if mine == theirs {
                    last = None;
                    break;
                }
                last = Some((mine, theirs));
            }
            assert!(last.is_none(), "{expr} ({spec}): {last:?}");
        }
    }
}
