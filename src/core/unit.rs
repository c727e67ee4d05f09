//! One unit's state machine data: its plan, its fine-grained state and its counters.
//!
//! The transitions themselves live in `core/mod.rs` (they need to look at other units for
//! dependencies); this file holds what a unit *is* and how it is shown. See `STATES.md`.

use std::time::{Duration, Instant};

use super::probe::{Health, ProbeState};
use super::readiness::ReadyState;
use super::{Action, ReportKind, StateKind, UnitPlan, UnitView};
use crate::spec::ExitStatus;

/// Why a unit is being stopped; decides where it lands once its process exited.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StopWhy {
    /// A client asked: land in `Stopped`, never restart.
    User,
    /// A dependency broke (the reason names it): land in `Blocked`, start again when it recovers.
    Cascade(String),
    /// Restart by request or a changed spec on reload: start again right after the exit.
    Restart,
    /// Removed from the plan by a reload: forget the unit after the exit.
    Remove,
    /// Its health check failed `retries` times (the text says how): the exit goes through the
    /// restart policy like a crash.
    Unhealthy(String),
}

/// Fine-grained state; `StateKind` is its coarse public face.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    /// Not wanted (initial, or stopped by a client).
    Stopped,
    /// Wanted, some dependency is on its way up.
    Waiting,
    /// `Action::Start` issued, waiting for `Started`/`StartFailed`.
    Starting,
    /// Process alive. `pending_stop` is set when a stop was decided but waits for the unit's
    /// dependents to exit first (dependents are always stopped before what they depend on).
    Running { pending_stop: Option<StopWhy> },
    /// Stop under way. `signalled` is false while the process is not yet known (the stop was
    /// decided during `Starting`; the signal goes out on `Started`). Signal and timeout are
    /// captured when the stop began so that a reload swapping the spec cannot change them.
    Stopping {
        why: StopWhy,
        signal: i32,
        timeout: Duration,
        signalled: bool,
        kill_at: Option<Instant>,
    },
    /// Restart scheduled at `at` (`None` only if the delay overflows `Instant`: never).
    Backoff { at: Option<Instant> },
    /// Exited 0, no restart.
    Completed,
    /// Failed for good until a new request.
    Failed,
    /// Wanted, but held down by a broken dependency.
    Blocked,
}

/// One unit as the core tracks it.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) plan: UnitPlan,
    pub(crate) state: State,
    pub(crate) pid: Option<u32>,
    pub(crate) since: Option<Instant>,
    /// When the current process started; drives the `STABLE_RUN` counter reset.
    pub(crate) running_since: Option<Instant>,
    pub(crate) restarts: u32,
    pub(crate) consecutive: u32,
    pub(crate) last_exit: Option<ExitStatus>,
    pub(crate) reason: Option<String>,
    /// The user (or a start-up `Start`) wants this unit up; cleared by a user stop. Only wanted
    /// units are ever started by the core on its own (dependency recovery, backoff).
    pub(crate) wanted: bool,
    /// Dropped from the plan by a reload; forgotten once its process is gone.
    pub(crate) removed: bool,
    /// Part of (or behind) a dependency cycle: can never start.
    pub(crate) in_cycle: bool,
    /// The `Healthy` condition requires it. With a health check it is set by the first passing
    /// probe; without one, when the process survived its settle window (like `Started`).
    pub(crate) healthy: bool,
    /// Probe schedule and counters (unused without a health check).
    pub(crate) probe: ProbeState,
    /// While running: when the settle window ends (`None` once the process counts as up).
    pub(crate) up_at: Option<Instant>,
    /// The last run exited 0 (latched for the `Completed` condition across policy restarts).
    pub(crate) succeeded: bool,
    /// The last attempt failed before its process counted as up (a start failure, or an exit
    /// inside the settle window) and the policy restarts it: why. The unit has then settled,
    /// badly, even while the restart is under way (a zero backoff never shows `Backoff`).
    /// Cleared once a process is up, when the policy gives up or completes, and by a client's
    /// start.
    pub(crate) failing_start: Option<String>,
    /// The backend key of the current process: the service name, or `name~N` after a rolling
    /// deployment promoted a candidate (see `deploy.rs`). Signals and kills go to this key.
    pub(crate) instance: String,
    /// The current process was adopted at start-up (see `UnitView::adopted`).
    pub(crate) adopted: bool,
    /// `READY=1`, `STATUS=`, watchdog (readiness.rs).
    pub(crate) ready: ReadyState,
}

impl Unit {
    /// A fresh, stopped unit for `plan`.
    pub(crate) fn new(plan: UnitPlan) -> Unit {
        Unit {
            state: State::Stopped,
            pid: None,
            since: None,
            running_since: None,
            restarts: 0,
            consecutive: 0,
            last_exit: None,
            reason: None,
            wanted: false,
            removed: false,
            in_cycle: false,
            healthy: false,
            probe: ProbeState::default(),
            up_at: None,
            succeeded: false,
            failing_start: None,
            instance: plan.name.clone(),
            adopted: false,
            ready: ReadyState::default(),
            plan,
        }
    }

    /// The unit's name.
    pub(crate) fn name(&self) -> &str {
        &self.plan.name
    }

    /// Move to `state` at `now` with `reason`.
    pub(crate) fn set(&mut self, now: Instant, state: State, reason: Option<String>) {
        self.state = state;
        self.since = Some(now);
        self.reason = reason;
    }

    /// Make the unit ready for a start requested by a client: counters and latches reset.
    pub(crate) fn fresh(&mut self, now: Instant) {
        self.consecutive = 0;
        self.succeeded = false;
        self.failing_start = None;
        self.set(now, State::Waiting, None);
    }

    /// A process exists (or is being created) for this unit.
    pub(crate) fn is_live(&self) -> bool {
        matches!(
            self.state,
            State::Starting | State::Running { .. } | State::Stopping { .. }
        )
    }

    /// The coarse state.
    pub(crate) fn kind(&self) -> StateKind {
        match self.state {
            State::Stopped => StateKind::Stopped,
            State::Waiting => StateKind::Waiting,
            State::Starting => StateKind::Starting,
            State::Running { .. } => StateKind::Running,
            State::Stopping { .. } => StateKind::Stopping,
            State::Backoff { .. } => StateKind::Backoff,
            State::Completed => StateKind::Completed,
            State::Failed => StateKind::Failed,
            State::Blocked => StateKind::Blocked,
        }
    }

    /// The earliest timer of this unit, if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { at } => at,
            State::Stopping { kill_at, .. } => kill_at,
            // Probes run only while no stop is decided.
            State::Running { pending_stop: None } => match (self.up_at, self.probe.deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            State::Running { .. } => self.up_at,
            _ => None,
        }
    }

    /// The health shown for this unit: while it has a process, and an unhealthy verdict
    /// until the next start. `None` without a health check.
    pub(crate) fn health(&self) -> Option<Health> {
        self.plan.health.as_ref()?;
        let status = self.probe.status?;
        match self.state {
            State::Running { .. } | State::Stopping { .. } => Some(status),
            State::Backoff { .. } | State::Failed if status == Health::Unhealthy => Some(status),
            _ => None,
        }
    }

    /// The public view.
    pub(crate) fn view(&self) -> UnitView {
        let since = match self.state {
            // For a running unit the interesting time is when the process began.
            State::Running { .. } => self.running_since.or(self.since),
            _ => self.since,
        };
        UnitView {
            name: self.plan.name.clone(),
            state: self.kind(),
            pid: self.pid,
            since,
            restarts: self.restarts,
            last_exit: self.last_exit,
            reason: self.reason.clone().or_else(|| match self.state {
                // A running unit whose probes fail says so before it turns unhealthy.
                State::Running { pending_stop: None } => self.probe.failures(),
                _ => None,
            }),
            health: self.health(),
            next_restart: match self.state {
                State::Backoff { at } => at,
                _ => None,
            },
            adopted: self.adopted && self.pid.is_some(),
        }
    }
}

impl Unit {
    /// Ask the runtime to start the unit.
    pub(crate) fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Start {
            unit: self.plan.name.clone(),
            spec: self.plan.spec.clone(),
        });
        // A normal start always runs under the service's own key.
        self.instance = self.plan.name.clone();
        self.adopted = false;
        self.healthy = false;
        self.set(now, State::Starting, None);
    }

    /// Send the stop signal now (or, while the process is not yet known, as soon as it is) and
    /// arm the kill deadline.
    pub(crate) fn begin_stop(&mut self, now: Instant, why: StopWhy, out: &mut Vec<Action>) {
        self.begin_stop_with(now, why, self.plan.spec.stop_signal, out);
    }

    /// `begin_stop` with `signal` instead of the unit's stop signal (the watchdog's SIGABRT).
    pub(crate) fn begin_stop_with(
        &mut self,
        now: Instant,
        why: StopWhy,
        signal: i32,
        out: &mut Vec<Action>,
    ) {
        let timeout = self.plan.spec.stop_timeout;
        let reason = match &why {
            StopWhy::Cascade(r) | StopWhy::Unhealthy(r) => Some(r.clone()),
            _ => None,
        };
        self.probe.end();
        let signalled = self.pid.is_some();
        let kill_at = if signalled {
            out.push(Action::Signal {
                unit: self.instance.clone(),
                signal,
            });
            now.checked_add(timeout)
        } else {
            None
        };
        self.set(
            now,
            State::Stopping {
                why,
                signal,
                timeout,
                signalled,
                kill_at,
            },
            reason,
        );
    }
}

/// Append an `Action::Report`.
pub(crate) fn report(out: &mut Vec<Action>, unit: &str, kind: ReportKind, message: String) {
    out.push(Action::Report {
        unit: unit.to_string(),
        kind,
        message,
    });
}
