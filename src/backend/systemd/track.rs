//! What the systemd backend knows about one unit it started or adopted (a `Track`, keyed by
//! the unit's object path), filled in by the signal thread (`watch`) and read by the calls.

use crate::backend::BackendEvent;
use crate::spec::ExitStatus;

/// What a track follows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// A unit `start` started (or `adopt` found): one process, one exit.
    #[default]
    Service,
    /// The service of a cron job's timer: one run after another.
    TimerRuns,
    /// A cron job's timer.
    Timer,
}

/// What the backend knows about one unit it started or adopted, keyed by object path.
#[derive(Debug, Default, Clone)]
pub struct Track {
    pub kind: TrackKind,
    /// A `readiness: notify` unit: its `StatusText`, readiness, reloads and `Result`s of
    /// `timeout`/`watchdog` are reported as `BackendEvent::Notify`.
    pub notify: bool,
    /// Wall-clock µs when the track was made. A run or trigger stamped earlier belongs to an
    /// earlier unit of the same name whose last signals were still queued.
    pub created_usec: u64,
    /// TimerRuns: `ExecMainStartTimestamp` of the run last reported as started.
    pub run_started_at: u64,
    /// TimerRuns: a run was reported started and its end not yet.
    pub run_open: bool,
    /// Timer: the last `LastTriggerUSec` seen.
    pub last_trigger: u64,
    /// The service (core unit) name.
    pub service: String,
    /// The systemd unit name.
    pub unit_name: String,
    /// `start` returned (or `adopt` succeeded): the end of this unit is reported.
    pub armed: bool,
    /// The end was reported; never report twice.
    pub reported: bool,
    /// The main pid returned by `start`/`adopt`.
    pub pid: u32,
    /// Last non-zero MainPID seen.
    pub main_pid: u32,
    /// ExecMainPID: stays set after the main process ended.
    pub exec_main_pid: u32,
    /// ExecMainCode (1 exited, 2 killed, 3 dumped) and ExecMainStatus.
    pub exec_main: Option<(i32, i32)>,
    /// Service `Result` (`success`, `exit-code`, `signal`, ...).
    pub result: Option<String>,
    pub active_state: Option<String>,
    /// Id of the unit's pending job, 0 when none.
    pub job_id: Option<u32>,
    /// The unit was seen `active`: an `inactive` after that is an end, not the state before start.
    pub seen_active: bool,
    /// The start job `start` is waiting for.
    pub start_job: Option<String>,
    /// `JobRemoved` results for this unit: (job path, result).
    pub jobs_done: Vec<(String, String)>,
    /// The unit ended (terminal state, or removed after it started).
    pub ended: bool,
    /// A job sysg did not ask for (`systemctl stop`) is pending or ran while the unit was up:
    /// its end is a stop by the operator. Cleared when such a job finishes with the unit up.
    pub outside_job: bool,
    /// systemd unloaded the unit.
    pub removed: bool,
}

impl Track {
    /// A fresh track for a unit about to be started or adopted.
    pub fn new(service: &str, unit_name: &str) -> Track {
        Track {
            service: service.to_string(),
            unit_name: unit_name.to_string(),
            ..Track::default()
        }
    }

    /// A track for the timer of the cron job `service`.
    pub fn timer(service: &str, unit_name: &str, created_usec: u64) -> Track {
        Track {
            kind: TrackKind::Timer,
            created_usec,
            ..Track::new(service, unit_name)
        }
    }

    /// A track for the service a cron job's timer starts.
    pub fn timer_runs(service: &str, unit_name: &str, created_usec: u64) -> Track {
        Track {
            kind: TrackKind::TimerRuns,
            created_usec,
            ..Track::new(service, unit_name)
        }
    }

    /// The result of the start job, once systemd reported it.
    pub fn start_job_result(&self) -> Option<&str> {
        let job = self.start_job.as_deref()?;
        self.jobs_done
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, r)| r.as_str())
    }

    /// How the main process ended, from the captured ExecMain* values.
    pub fn exit_status(&self) -> ExitStatus {
        match self.exec_main {
            Some((1, status)) => ExitStatus::Code(status),
            Some((2 | 3, sig)) => ExitStatus::Signal(sig),
            _ => ExitStatus::Unknown,
        }
    }

    /// The event to send now, if the unit ended and that was not reported yet. Marks it reported.
    pub fn take_exit(&mut self) -> Option<BackendEvent> {
        if !(self.armed && self.ended) || self.reported {
            return None;
        }
        self.reported = true;
        let pid = if self.pid != 0 {
            self.pid
        } else {
            self.exec_main_pid
        };
        let (unit, status) = (self.service.clone(), self.exit_status());
        Some(if self.outside_job {
            BackendEvent::StoppedOutside { unit, pid, status }
        } else {
            BackendEvent::Exited { unit, pid, status }
        })
    }
}
