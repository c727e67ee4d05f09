//! The pure supervisor core: `handle(now, event) -> actions`.
//!
//! It never forks, never talks to D-Bus, never reads the clock: the runtime feeds it events
//! (with the time they happened) and carries out the actions it returns. Every rule about
//! ordering, cascades, restarts and backoff lives here, shared by both backends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::schema::{Dependency, RestartPolicy};
use crate::spec::{ExitStatus, UnitSpec};

/// A unit's key: the service name.
pub type UnitId = String;

/// What the core needs to know about one configured unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitPlan {
    pub name: UnitId,
    pub spec: Arc<UnitSpec>,
    pub depends_on: Vec<Dependency>,
    pub restart: RestartPolicy,
    /// Base restart delay; the n-th consecutive restart waits `backoff * 2^(n-1)`, capped.
    pub backoff: Duration,
    /// Consecutive restarts allowed before the unit is `failed`; `None` = unlimited.
    pub max_restarts: Option<u32>,
}

/// Something that happened, fed to the core by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A client asked for something.
    Request(Request),
    /// The backend started the unit's main process.
    Started { unit: UnitId, pid: u32 },
    /// The backend could not start the unit at all.
    StartFailed { unit: UnitId, error: String },
    /// The unit's main process ended; the backend has already killed what was left of its tree.
    Exited {
        unit: UnitId,
        pid: u32,
        status: ExitStatus,
    },
    /// At supervisor start-up the unit was found still running and adopted.
    Adopted { unit: UnitId, pid: u32 },
    /// Time passed: do whatever is due at `now` (see `Core::next_deadline`).
    Tick,
}

/// A control request, already validated against the plan by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Start these units (with what they depend on), or every unit when `None`.
    Start(Option<Vec<UnitId>>),
    /// Stop these units (and their dependents), or every unit when `None`, dependents first.
    Stop(Option<Vec<UnitId>>),
    /// Stop then start these units (others untouched), or every unit when `None`.
    Restart(Option<Vec<UnitId>>),
    /// Apply a new plan: added units start, removed ones stop and are forgotten, changed ones
    /// restart, unchanged ones keep running.
    Reload(Vec<UnitPlan>),
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the unit's main process; answer with `Started` or `StartFailed`.
    Start { unit: UnitId, spec: Arc<UnitSpec> },
    /// Send `signal` to every process of the unit.
    Signal { unit: UnitId, signal: i32 },
    /// SIGKILL every process of the unit.
    Kill { unit: UnitId },
    /// A notable transition, for the supervisor log, webhooks and status reasons.
    Report {
        unit: UnitId,
        kind: ReportKind,
        message: String,
    },
    /// State worth persisting changed.
    Persist,
}

/// Kinds of `Action::Report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Started,
    Exited,
    Failed,
    Restarting,
    Stopped,
    DependencyFailed,
}

/// Coarse state of a unit, as shown by `sysg status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// Not started: waiting for dependencies.
    Waiting,
    /// Start issued, not yet confirmed.
    Starting,
    Running,
    /// Stop signal sent, waiting for the exit.
    Stopping,
    /// Crashed; a restart is scheduled.
    Backoff,
    /// Exited 0 and will not be restarted.
    Completed,
    /// Exited badly and will not be restarted, could not start, or gave up after max_restarts.
    Failed,
    /// Stopped by request, or never started.
    Stopped,
    /// Held down because a dependency failed or stopped.
    Blocked,
}

/// A read-only view of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitView {
    pub name: UnitId,
    pub state: StateKind,
    pub pid: Option<u32>,
    /// When the current state (for Running: the process) began.
    pub since: Option<Instant>,
    /// Restarts done by policy over the unit's life in this supervisor.
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// Why the unit is where it is (dependency, error, give-up), for humans.
    pub reason: Option<String>,
    /// When a scheduled restart is due (Backoff).
    pub next_restart: Option<Instant>,
}

pub struct Core {
    _private: (),
}

impl Core {
    /// A core for this plan; nothing starts until a `Request::Start`.
    pub fn new(_plan: Vec<UnitPlan>) -> Core {
        todo!("core")
    }

    /// Feed one event at time `now`; returns what to do, in order.
    pub fn handle(&mut self, _now: Instant, _event: Event) -> Vec<Action> {
        todo!("core")
    }

    /// The earliest time at which a `Tick` has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        todo!("core")
    }

    /// Every unit, in plan order.
    pub fn units(&self) -> Vec<UnitView> {
        todo!("core")
    }

    /// True when none of `units` (all when `None`) is still on its way up
    /// (`Waiting` on a dependency that may still come up, or `Starting`).
    pub fn settled(&self, _units: Option<&[UnitId]>) -> bool {
        todo!("core")
    }

    /// True when no unit has a process (all stopped, completed, failed or blocked).
    pub fn idle(&self) -> bool {
        todo!("core")
    }
}
