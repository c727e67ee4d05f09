//! How cron jobs are shown: the one-line summary of `sysg status` and the run history of
//! `sysg inspect`. Times are shown in the job's own zone.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::human::human_duration;
use crate::config::{Config, CronSchedule};
use crate::core::{CronRun, CronStatus, Driver, RunResult};

/// What `status` can say about a job without a supervisor: its schedule and the history the
/// last supervisor saved.
pub fn offline_status(
    config: Option<&Config>,
    name: &str,
    saved: &BTreeMap<String, Vec<CronRun>>,
) -> Option<CronStatus> {
    let svc = config?.service(name)?;
    let cron = svc.cron.as_ref()?;
    let timezone = CronSchedule::parse(&cron.expression, cron.timezone.as_deref())
        .map(|s| s.timezone().name().to_string())
        .unwrap_or_else(|_| cron.timezone.clone().unwrap_or_default());
    Some(CronStatus {
        expression: cron.expression.clone(),
        timezone,
        driver: Driver::Supervisor,
        armed: false,
        next_run: None,
        history: saved.get(name).cloned().unwrap_or_default(),
    })
}

fn zone(c: &CronStatus) -> Tz {
    Tz::from_str(&c.timezone).unwrap_or(Tz::UTC)
}

/// `10:05:00 CET` within a day of `now`, else `2026-11-23 03:00 CET`.
fn when(t: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    let local = t.with_timezone(&tz);
    if (t - now).num_seconds().abs() < 86_400 {
        local.format("%H:%M:%S %Z").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M %Z").to_string()
    }
}

/// `success`, `exit 3`, `signal SIGKILL`, `skipped`, `running`, `stopped (signal SIGTERM)`.
fn outcome(r: &CronRun) -> String {
    match (r.result, r.status) {
        (RunResult::Success, _) => "success".into(),
        (RunResult::Running, _) => "running".into(),
        (RunResult::Skipped, _) => "skipped".into(),
        (RunResult::Stopped, Some(s)) => format!("stopped ({s})"),
        (RunResult::Stopped, None) => "stopped".into(),
        (RunResult::Failed, Some(s)) => s.to_string(),
        (RunResult::Failed, None) => "failed".into(),
    }
}

/// The REASON cell of `sysg status` for a job: the unit's own reason if any, the next run and
/// the last result.
pub fn summary(c: &CronStatus, reason: Option<&str>, now: DateTime<Utc>) -> String {
    let tz = zone(c);
    let mut parts: Vec<String> = reason.map(str::to_string).into_iter().collect();
    match (c.armed, c.next_run) {
        (true, Some(t)) => parts.push(format!(
            "next {} (in {})",
            when(t, tz, now),
            human_duration((t - now).num_milliseconds().max(0) as f64 / 1000.0)
        )),
        (true, None) => parts.push("no further runs".into()),
        // A reason (no supervisor, ...) already says why nothing is scheduled.
        (false, _) if reason.is_none() => parts.push("not scheduled".into()),
        (false, _) => {}
    }
    if let Some(last) = c.history.last() {
        parts.push(format!("last: {}", outcome(last)));
    }
    parts.join("; ")
}

/// The schedule, next run and history of `job` of `project`, for `sysg inspect`.
pub fn details(project: &str, job: &str, c: &CronStatus, now: DateTime<Utc>) -> String {
    let tz = zone(c);
    let driver = match c.driver {
        Driver::Supervisor => "run by the supervisor".to_string(),
        Driver::SystemdTimer => match crate::backend::timer_unit(project, job) {
            Some(timer) => format!("run by the systemd timer {timer}"),
            None => "run by a systemd timer".to_string(),
        },
    };
    let mut out = format!("  schedule:  {} ({}), {driver}\n", c.expression, c.timezone);
    let next = match (c.armed, c.next_run) {
        (true, Some(t)) => format!(
            "{} (in {})",
            t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
            human_duration((t - now).num_milliseconds().max(0) as f64 / 1000.0)
        ),
        (true, None) => "none (the schedule has no further times)".into(),
        (false, _) => "not scheduled (stopped)".into(),
    };
    out.push_str(&format!("  next run:  {next}\n"));
    if c.history.is_empty() {
        out.push_str("  runs:      none yet\n");
        return out;
    }
    out.push_str("  runs (oldest first):\n");
    let header = ["SCHEDULED", "STARTED", "TOOK", "RESULT"];
    let rows: Vec<[String; 4]> = c
        .history
        .iter()
        .map(|r| {
            let local = |t: DateTime<Utc>| t.with_timezone(&tz);
            let took = match (r.started, r.ended) {
                (Some(a), Some(b)) => {
                    format!("{:.3}s", (b - a).num_milliseconds().max(0) as f64 / 1000.0)
                }
                _ => "-".into(),
            };
            let mut result = outcome(r);
            if let Some(note) = &r.note {
                result.push_str(&format!(": {note}"));
            }
            [
                r.scheduled.map_or_else(
                    || "-".into(),
                    |t| local(t).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
                ),
                r.started.map_or_else(
                    || "-".into(),
                    |t| local(t).format("%H:%M:%S%.3f").to_string(),
                ),
                took,
                result,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut l = String::from("    ");
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cells.len() {
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ExitStatus;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn status(history: Vec<CronRun>) -> CronStatus {
        CronStatus {
            expression: "*/5 * * * *".into(),
            timezone: "Europe/Berlin".into(),
            driver: Driver::Supervisor,
            armed: true,
            next_run: Some(t("2026-01-10T09:05:00Z")),
            history,
        }
    }

    fn run(result: RunResult, status: Option<ExitStatus>, note: Option<&str>) -> CronRun {
        CronRun {
            scheduled: Some(t("2026-01-10T09:00:00Z")),
            started: (result != RunResult::Skipped).then(|| t("2026-01-10T09:00:00.004Z")),
            ended: (result != RunResult::Skipped).then(|| t("2026-01-10T09:00:01.504Z")),
            pid: None,
            status,
            result,
            skipped: result == RunResult::Skipped,
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn summary_shows_next_and_last_in_the_jobs_zone() {
        let now = t("2026-01-10T09:04:48Z");
        assert_eq!(
            summary(&status(vec![]), None, now),
            "next 10:05:00 CET (in 12s)"
        );
        let s = summary(
            &status(vec![run(
                RunResult::Failed,
                Some(ExitStatus::Code(3)),
                None,
            )]),
            None,
            now,
        );
        assert_eq!(s, "next 10:05:00 CET (in 12s); last: exit 3");
        let mut stopped = status(vec![run(RunResult::Skipped, None, Some("x"))]);
        stopped.armed = false;
        assert_eq!(summary(&stopped, None, now), "not scheduled; last: skipped");
        assert_eq!(
            summary(&stopped, Some("no supervisor running"), now),
            "no supervisor running; last: skipped"
        );
    }

    #[test]
    fn details_list_every_run() {
        let now = t("2026-01-10T09:04:48Z");
        let text = details(
            "shop",
            "backup",
            &status(vec![
                run(RunResult::Success, Some(ExitStatus::Code(0)), None),
                run(
                    RunResult::Skipped,
                    None,
                    Some("the previous run is still running"),
                ),
            ]),
            now,
        );
        assert!(
            text.contains("schedule:  */5 * * * * (Europe/Berlin), run by the supervisor"),
            "{text}"
        );
        assert!(
            text.contains("next run:  2026-01-10 10:05:00 CET (in 12s)"),
            "{text}"
        );
        assert!(text.contains("10:00:00.004  1.500s  success"), "{text}");
        assert!(
            text.contains("skipped: the previous run is still running"),
            "{text}"
        );
        let mut timer = status(vec![]);
        timer.driver = Driver::SystemdTimer;
        let text = details("shop", "backup", &timer, now);
        assert!(
            text.contains("run by the systemd timer sysg-shop-backup.timer"),
            "{text}"
        );
        assert!(text.contains("runs:      none yet"), "{text}");
    }
}
