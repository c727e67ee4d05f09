//! The records of a job's runs, as persisted in state.json and shown by `status`/`inspect`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spec::ExitStatus;

/// Who starts the runs of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// The supervisor's own schedule.
    Supervisor,
    /// A backend timer (a systemd `.timer` unit).
    SystemdTimer,
}

/// How one run ended (or that it is still going, or never started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    Running,
    /// Exit code 0.
    Success,
    /// Any other ending: a non-zero exit, a signal, an unknown status, or a failed start.
    Failed,
    /// Not run: the previous run was still going, or a dependency did not hold.
    Skipped,
    /// Stopped by a request while it ran.
    Stopped,
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronRun {
    /// The schedule time this run belongs to; `null` for a run by request.
    #[serde(default, with = "opt_time")]
    pub scheduled: Option<DateTime<Utc>>,
    /// When the process started; `null` when skipped.
    #[serde(default, with = "opt_time")]
    pub started: Option<DateTime<Utc>>,
    /// When it ended; `null` while running or when skipped.
    #[serde(default, with = "opt_time")]
    pub ended: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Exit status; `null` while running, when skipped, or when the start failed.
    #[serde(default)]
    pub status: Option<ExitStatus>,
    pub result: RunResult,
    /// True when the run was skipped (see `note` for why).
    #[serde(default)]
    pub skipped: bool,
    /// Why it was skipped, why it failed to start, or how it came about.
    #[serde(default)]
    pub note: Option<String>,
}

impl CronRun {
    pub(crate) fn skipped(scheduled: DateTime<Utc>, why: String) -> CronRun {
        CronRun {
            scheduled: Some(scheduled),
            started: None,
            ended: None,
            pid: None,
            status: None,
            result: RunResult::Skipped,
            skipped: true,
            note: Some(why),
        }
    }

    pub(crate) fn running(
        scheduled: Option<DateTime<Utc>>,
        started: Option<DateTime<Utc>>,
    ) -> CronRun {
        CronRun {
            scheduled,
            started,
            ended: None,
            pid: None,
            status: None,
            result: RunResult::Running,
            skipped: false,
            note: None,
        }
    }

    /// Sort key: runs are shown in schedule order.
    pub(crate) fn when(&self) -> Option<DateTime<Utc>> {
        self.scheduled.or(self.started).or(self.ended)
    }
}

/// A job as `status` shows it: the schedule, the next run and the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronStatus {
    pub expression: String,
    /// IANA zone the expression is evaluated in.
    pub timezone: String,
    pub driver: Driver,
    /// The schedule is active (`sysg start`); false after a stop.
    pub armed: bool,
    #[serde(default, with = "opt_time")]
    pub next_run: Option<DateTime<Utc>>,
    /// Up to `super::HISTORY_LEN` finished or skipped runs plus the running one, oldest first.
    pub history: Vec<CronRun>,
}

/// `Option<DateTime<Utc>>` as an RFC 3339 string (UTC, milliseconds) or null.
mod opt_time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
