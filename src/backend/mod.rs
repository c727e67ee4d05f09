//! Backends run units: the systemd backend (transient units over D-Bus) and the process
//! backend (fork/exec). Both sit behind `Backend`; the core never knows which one runs.

#[cfg(test)]
pub mod fake;
#[cfg(target_os = "linux")]
pub mod observe;
pub mod process;
pub mod scoped_run;
pub mod select;
#[cfg(target_os = "linux")]
pub mod systemd;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::spec::{ExitStatus, UnitSpec};

/// The systemd timer unit that runs cron job `job` of `project` under the systemd backend;
/// `None` where there is no systemd.
pub fn timer_unit(project: &str, job: &str) -> Option<String> {
    #[cfg(target_os = "linux")]
    return Some(systemd::naming::timer_name(project, job));
    #[cfg(not(target_os = "linux"))]
    return None;
}

/// An event a backend reports on its own (not as the answer to a call).
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// The unit's main process ended and no process of the unit is left (its status is the
    /// main process's).
    Exited {
        unit: String,
        pid: u32,
        status: ExitStatus,
    },
    /// The unit's main process, started by `start` as `pid`, ended before it ran the unit's
    /// command: a step of its set-up or its exec failed (`error` says which). Comes instead of
    /// `Exited`; to the unit it is a failed start.
    ExecFailed {
        unit: String,
        pid: u32,
        error: String,
    },
    /// The unit's main process `pid` ended while other processes of the unit live on. Nothing
    /// was done to them (the core decides: stop signal, kill after the timeout); `Exited` (or
    /// `ExecFailed`) follows once the unit is empty. `stopping`: they got the unit's stop
    /// signal already (a stop is under way). Not sent when the unit was empty at once.
    MainExited {
        unit: String,
        pid: u32,
        stopping: bool,
        stop_signal: i32,
        stop_timeout: std::time::Duration,
    },
    /// A process of the unit started that `start` did not start: a run of a cron job started
    /// by the backend's own timer (or by `trigger`). Its end comes as `Exited`.
    Started { unit: String, pid: u32 },
    /// The unit's main process ended because the host's service manager stopped the unit at
    /// someone else's request (`systemctl stop`): a stop by the operator, not a crash. Comes
    /// instead of `Exited`.
    StoppedOutside {
        unit: String,
        pid: u32,
        status: ExitStatus,
    },
    /// The unit, which had ended, was started again outside sysg (`systemctl start`): `pid` is
    /// its new main process, whose end comes as `Exited` (or `StoppedOutside`).
    StartedOutside { unit: String, pid: u32 },
    /// The running unit was restarted outside sysg (`systemctl restart`): its main process
    /// `old` ended and `pid` took its place, with no moment when the unit was down for good.
    /// Not a crash; the new process's end comes as `Exited` (or `StoppedOutside`).
    RestartedOutside { unit: String, old: u32, pid: u32 },
    /// The timer of a cron job elapsed. It starts a run (reported as `Started`) unless the
    /// previous run still runs, in which case nothing else follows.
    Elapsed { unit: String },
    /// A process of the unit sent an `sd_notify` message (process backend: its notify
    /// socket; systemd backend: a change of the unit's `StatusText`).
    Notify {
        unit: String,
        pid: u32,
        message: crate::core::NotifyMessage,
    },
}

/// Where a backend sends its events (the runtime's channel).
pub type EventSink = Box<dyn Fn(BackendEvent) + Send + Sync>;

/// What a later supervisor needs to re-adopt a running unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptRecord {
    pub unit: String,
    pub pid: u32,
    /// Process start time (field 22 of /proc/PID/stat): guards against a reused pid.
    pub start_time: u64,
    /// Backend-specific data (process group, cgroup directory, log fifos, unit name).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// One helper command (probe, hook, deployment or reload command) of a service, to run as a
/// unit of its own (the systemd backend's `helper.rs`; `health::placement` hands it over).
pub struct HelperRun<'a> {
    /// The service the helper belongs to: its unit's properties are the helper's.
    pub spec: &'a UnitSpec,
    /// `probe`, `hook`, `pre_start`, `switch_command`.
    pub kind: &'a str,
    /// Run as `/bin/sh -c command` (or directly, by the rule services follow).
    pub command: &'a str,
    /// The helper's environment (the service's plus anything the helper adds).
    pub env: &'a [(String, String)],
    pub timeout: Duration,
}

/// How a helper ended.
#[derive(Debug, Clone, PartialEq)]
pub enum HelperEnd {
    /// It exited (or was killed by a signal) on its own.
    Exited(ExitStatus),
    /// systemd killed it at its timeout (or the supervisor did, when systemd's report was late).
    TimedOut,
}

/// Backend failures.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error("{unit}: {message}")]
    Start { unit: String, message: String },
    /// The backend refused the unit's configuration (a property the running systemd does not
    /// accept): a configuration error, which retrying cannot fix.
    #[error("{unit}: {message}")]
    Refused { unit: String, message: String },
    #[error("{unit}: not running")]
    NotRunning { unit: String },
    /// A record of the state file that the live process does not prove (see
    /// `process::verify`): it is neither adopted nor signalled.
    #[error("{unit}: the recorded process is not one of this project's units: {reason}")]
    Untrusted { unit: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// A way to run units.
pub trait Backend: Send {
    /// `process` or `systemd`.
    fn name(&self) -> &'static str;
    /// Start the unit's main process and return its pid. Its exit arrives later as
    /// `BackendEvent::Exited` on the sink (or `ExecFailed`, when a backend that does not wait
    /// for the exec learns that it failed).
    fn start(&mut self, spec: &UnitSpec) -> Result<u32, BackendError>;
    /// Start several units the core asked for at once: one result per spec, in order, each
    /// what `start` would give; one unit's failure leaves the others alone. A backend that can
    /// overlap the starts overrides it (systemd asks for every unit, then waits for each).
    fn start_many(&mut self, specs: &[UnitSpec]) -> Vec<Result<u32, BackendError>> {
        specs.iter().map(|spec| self.start(spec)).collect()
    }
    /// Send `signal` to every process of the unit.
    fn signal(&mut self, unit: &str, signal: i32) -> Result<(), BackendError>;
    /// SIGKILL every process of the unit.
    fn kill(&mut self, unit: &str) -> Result<(), BackendError>;
    /// Re-attach to a unit recorded by an earlier supervisor. `Ok(Some(pid))` when it still runs
    /// (pid and start time both match), `Ok(None)` when it is gone.
    fn adopt(&mut self, record: &AdoptRecord) -> Result<Option<u32>, BackendError>;
    /// What to persist so that a later supervisor can adopt the running units.
    fn records(&self) -> Vec<AdoptRecord>;
    /// Running units of the project the backend can find by itself (without a state file),
    /// as records to pass to `adopt`. Only the systemd backend can: its units outlive the
    /// supervisor under a known name.
    fn discover(&self) -> Vec<AdoptRecord> {
        Vec::new()
    }
    /// Every unit has stopped and the supervisor is leaving for good: remove what the backend
    /// created for the project as a whole (the systemd backend's project slice).
    fn release(&mut self) {}
    /// Whether the backend can run cron jobs from its own timers (`arm_timer`).
    fn supports_timers(&self) -> bool {
        false
    }
    /// Create (or replace) a timer that runs `spec` on `calendar` (systemd `OnCalendar=`
    /// syntax). Each run is reported as `Elapsed`, then `Started` and `Exited`.
    fn arm_timer(&mut self, spec: &UnitSpec, calendar: &str) -> Result<(), BackendError> {
        let _ = calendar;
        Err(BackendError::Other(format!(
            "{}: the {} backend has no timers",
            spec.name,
            self.name()
        )))
    }
    /// Remove the timer of `unit`, if there is one; a run in progress is left alone.
    fn disarm_timer(&mut self, unit: &str) -> Result<(), BackendError> {
        let _ = unit;
        Ok(())
    }
    /// Start a run of the timer-driven job `unit` now, outside its schedule; the run is
    /// reported as `Started`/`Exited`.
    fn trigger(&mut self, unit: &str) -> Result<(), BackendError> {
        Err(BackendError::Other(format!(
            "{unit}: the {} backend has no timers",
            self.name()
        )))
    }
}

/// Where the process backend hands its forked processes to a service manager (systemd's
/// transient scopes, `systemd::scope`), so that they live in a unit of the project's slice.
pub trait ScopeHost: Send {
    /// Put `pid` (forked, not yet exec'd) into a fresh scope for `spec` and return once the
    /// manager has moved it there; returns the scope's name.
    fn register(&self, spec: &UnitSpec, pid: u32) -> Result<String, BackendError>;
    /// The name of the scope `register` makes for `unit`.
    fn scope_name(&self, unit: &str) -> String;
    /// The slice that scope goes to.
    fn slice_name(&self, unit: &str) -> String;
}

/// Which backend the runtime should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// systemd when its manager is reachable over D-Bus, else process.
    #[default]
    Auto,
    /// Transient systemd units.
    Systemd,
    /// fork/exec.
    Process,
}

/// Directories a backend writes to.
#[derive(Debug, Clone)]
pub struct BackendPaths {
    /// Per-project log directory (`<state>/<project>/logs`).
    pub log_dir: PathBuf,
    /// Per-project runtime directory for transient files; it also names the project instance.
    pub run_dir: PathBuf,
    /// Where the units' output FIFOs are made (often `run_dir`; see `ProjectPaths::fifo_dir`).
    pub fifo_dir: PathBuf,
}
