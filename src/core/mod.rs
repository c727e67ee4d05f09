//! The pure supervisor core: `handle(now, event) -> actions`, and above it
//! `Supervision::handle(now, wall, input) -> actions` for the whole supervisor.
//!
//! It never forks, never talks to D-Bus, never reads the clock: the runtime feeds it events
//! (with the time they happened) and carries out the actions it returns. Every rule about
//! ordering, cascades, restarts and backoff lives here, shared by both backends.
//!
//! Layout: `supervision.rs` (the runtime's one entry: routes events by key between the unit
//! state machine and the spawn tree, client requests and waits, ad-hoc units; `waits.rs` has
//! the goals and answers), `unit.rs` (one unit's state), `policy.rs` (restart decision and
//! backoff), `deps.rs` (order, closures, dependency conditions), `cron.rs` (cron jobs:
//! schedule, overlap, history), `spawn.rs` (spawn trees), `deploy.rs` (deployments), this file
//! (the vocabulary, dispatch, starts and adoption), `endings.rs` (exits and the policy after
//! them), `requests.rs` (client requests to the units), `reconcile.rs` (the reconcile pass),
//! `views.rs` (what the core reports). The state diagram and the decisions are in `STATES.md`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::schema::{Dependency, HealthCheck, RestartPolicy};
use crate::spec::{ExitStatus, UnitSpec};

mod adhoc;
mod cron;
mod deploy;
mod deps;
mod drain;
mod endings;
mod health;
mod notice;
mod outside;
mod policy;
mod probe;
#[cfg(test)]
mod random_tests;
mod readiness;
mod reconcile;
mod requests;
pub mod spawn;
mod supervision;
#[cfg(test)]
mod supervision_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod unit;
mod views;
mod waits;

use deps::{Check, Mode};
use notice::notify;
use policy::{Decision, Ending};
use unit::{report, State, StopWhy, Unit};

pub use cron::{CronRun, CronStatus, Driver, JobPlan, RunResult, HISTORY_LEN, WALL_RECHECK};
pub use deploy::{
    instance_key, service_of, BlueGreenPlan, DeployAction, DeployEvent, DeployOutcome, DeployPlan,
    Step, COMMAND_TIMEOUT, MIN_DEPLOY_SETTLE,
};
pub use drain::MainExit;
pub use notice::{Notice, NoticeKind};
pub use policy::{backoff_delay, MAX_BACKOFF, STABLE_RUN};
pub use probe::{Health, PROBE_GRACE};
pub use readiness::{NotifyMessage, NotifyView, Watchdog};
pub use supervision::{Answer, ChildEvent, ClientEvent, ClientId, Input, Supervision};
pub use waits::Goal;

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
    /// How long a new process must stay up before it counts as started (for dependents with
    /// `condition: started` and for `settled`). Zero: as soon as it runs.
    pub settle: Duration,
    /// The health check: when set, `healthy` (and readiness) comes from its probes.
    pub health: Option<Arc<HealthCheck>>,
}

/// The settle window the runtime uses for every unit: a process that dies within it (a
/// missing program under `/bin/sh -c`, a crash on start-up) failed to *start*, so its
/// dependents never run and `sysg start` reports the failure.
pub const START_SETTLE: Duration = Duration::from_millis(200);

/// Something that happened, fed to the core by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A client asked for something.
    Request(Request),
    /// The backend started the unit's main process.
    Started { unit: UnitId, pid: u32 },
    /// The backend could not start the unit at all.
    StartFailed { unit: UnitId, error: String },
    /// The backend refused the unit's configuration (a property the running systemd does not
    /// accept): the unit is `Failed` at once, whatever its restart policy — a retry would be
    /// refused the same way. Anything but a service's own start is taken as `StartFailed`.
    StartRefused { unit: UnitId, error: String },
    /// The unit's main process ended and the unit is empty: no process of it is left (see
    /// `MainExited` for the step before, and `drain.rs`).
    Exited {
        unit: UnitId,
        pid: u32,
        status: ExitStatus,
    },
    /// The process started for the unit as `pid` (already `Started`) ended before it ran the
    /// unit's command: its set-up or exec failed (`error` says which). A failed start.
    ExecFailed {
        unit: UnitId,
        pid: u32,
        error: String,
    },
    /// The unit's main process ended while other processes of the unit remain (any backend
    /// key): they are stopped as in a stop, and `Exited` follows once the unit is empty.
    MainExited(MainExit),
    /// At supervisor start-up the unit was found still running and adopted. The runtime
    /// sends `AdoptedAll` instead; a single `Adopted` is the same as a batch of one.
    Adopted { unit: UnitId, pid: u32 },
    /// The unit's main process `pid` ended because the service manager stopped the unit at
    /// someone else's request (`systemctl stop`): a stop by the operator, not a crash. The
    /// unit stays stopped and its dependents follow, as on `sysg stop -s`.
    StoppedOutside {
        unit: UnitId,
        pid: u32,
        status: ExitStatus,
    },
    /// The unit was started again outside sysg (`systemctl start`) with main process `pid`:
    /// the core follows it as its running process.
    StartedOutside { unit: UnitId, pid: u32 },
    /// The running unit was restarted outside sysg (`systemctl restart`): main process `old`
    /// was replaced by `pid`. The core follows the new process; no crash is counted.
    RestartedOutside { unit: UnitId, old: u32, pid: u32 },
    /// At supervisor start-up: every unit found still running, in one step. The core takes
    /// them all in before it judges any dependency, so a dependent adopted before its
    /// dependency (name order, discovery order) is never cascade-stopped.
    AdoptedAll(Vec<Adoption>),
    /// The probe `probe` (from `Action::Probe`) passed (`ok`) or failed (`detail` says why).
    ProbeResult {
        unit: UnitId,
        probe: u64,
        ok: bool,
        detail: String,
    },
    /// Time passed: do whatever is due at `now` (see `Core::next_deadline`).
    Tick,
    /// A deployment step answered (see `deploy.rs`).
    Deploy(DeployEvent),
    /// A cron job's backend timer elapsed (it starts the run itself, or does nothing when the
    /// previous run still runs).
    Elapsed { unit: UnitId },
    /// A cron job's backend timer could not be created; the core schedules the job instead.
    TimerFailed { unit: UnitId, error: String },
    /// An `sd_notify` message from process `pid` of the unit (checked by the runtime to
    /// belong to it); see `readiness.rs`.
    Notify {
        unit: UnitId,
        pid: u32,
        message: NotifyMessage,
    },
    /// `sysg reload` sent the unit its reload signal: a notify unit must answer with
    /// `RELOADING=1` … `READY=1` within its `start_timeout` (`Core::reload_outcome`).
    ReloadSent { unit: UnitId },
}

/// One unit found running at supervisor start-up (see `Event::AdoptedAll`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The unit, or a deployment instance key (`service~…`).
    pub unit: UnitId,
    pub pid: u32,
    /// When the process started (from the backend's records), when known: its uptime goes on
    /// from there, and the report says since when it runs.
    pub started: Option<Instant>,
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
    /// Add one unit to the running plan and start it (an ad-hoc unit); others are untouched.
    /// A name already in the plan is ignored (the runtime checks names first).
    Add(UnitPlan),
    /// Drop these units from the plan: a live one is stopped first, then forgotten.
    Forget(Vec<UnitId>),
    /// Apply a new set of cron jobs: added ones are armed, removed ones disarmed (a live run is
    /// stopped), changed ones take effect from their next run.
    ReloadJobs(Vec<JobPlan>),
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
    /// Run the unit's health probe off the event loop, bounded by `check.timeout`; answer with
    /// `Event::ProbeResult` carrying the same `probe` id. `spec` gives env and cwd.
    Probe {
        unit: UnitId,
        probe: u64,
        check: Arc<HealthCheck>,
        spec: Arc<UnitSpec>,
    },
    /// A lifecycle event for hooks and webhooks; never affects supervision.
    Notify(Notice),
    /// A rolling or blue-green deployment step (see `deploy.rs`).
    Deploy(DeployAction),
    /// Create the backend timer that runs this cron job on `calendar` (systemd `OnCalendar=`);
    /// answer `TimerFailed` if it cannot be created.
    ArmTimer {
        unit: UnitId,
        spec: Arc<UnitSpec>,
        calendar: String,
    },
    /// Remove the backend timer of this cron job (no error if there is none).
    DisarmTimer { unit: UnitId },
    /// Run this timer-driven cron job now through its timer's service; its `Started`/`Exited`
    /// come from the backend, a failure is answered with `StartFailed`.
    Trigger { unit: UnitId },
    /// Answer a waiting client (`Supervision` only; see `supervision.rs`).
    Reply { client: ClientId, answer: Answer },
    /// Carry out the spawn tree's decision about a child (`Supervision` only).
    Child(spawn::SpawnAction),
    /// A service's process ended: record it in the exit history that `inspect` shows, with
    /// how long it ran when known (`Supervision` only).
    RecordExit {
        unit: UnitId,
        pid: u32,
        status: ExitStatus,
        ran: Option<f64>,
    },
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
    /// A probe passed after the unit was starting or failing.
    Healthy,
    /// `retries` consecutive probes failed.
    Unhealthy,
    /// A rolling or blue-green deployment began.
    Deploying,
    /// A deployment promoted its new instance.
    Deployed,
    /// A deployment failed; the old instance keeps running.
    DeployFailed,
    /// A cron run was due while the previous one still ran, or its dependencies did not hold.
    Skipped,
    /// Something worth a warning that is not a failure of the unit.
    Warning,
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
    /// A cron job waiting for its next run.
    Scheduled,
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
    /// The current process was found running at start-up (re-adopted), not started by this
    /// supervisor.
    pub adopted: bool,
    /// `starting`/`healthy`/`unhealthy` for a unit with a health check (see `Unit::health`).
    pub health: Option<Health>,
}

/// The supervisor state machine for one project.
pub struct Core {
    /// Plan order; units removed by a reload but still stopping are kept at the end.
    units: Vec<Unit>,
    index: HashMap<UnitId, usize>,
    /// Start order (dependencies first); reconcile walks it so one pass settles a chain.
    order: Vec<usize>,
    /// Last probe id handed out; ids tell current results from stale ones.
    probe_seq: u64,
    /// Rolling and blue-green deployments: plans, those under way, old instances draining.
    book: deploy::Book,
    /// Cron jobs (`cron.rs`): kept apart, no dependency, restart or settle rule applies to them.
    jobs: Vec<cron::Job>,
    /// Backend keys whose main process ended while the rest of their unit winds down.
    drains: drain::Drains,
    /// The last (monotonic, wall-clock) pair given to `handle_at`: cron schedules are wall-clock.
    clock: Option<(Instant, DateTime<Utc>)>,
}

impl Core {
    /// A core for this plan; nothing starts until a `Request::Start`.
    pub fn new(plan: Vec<UnitPlan>) -> Core {
        let mut core = Core {
            units: dedup(plan).into_iter().map(Unit::new).collect(),
            index: HashMap::new(),
            order: Vec::new(),
            probe_seq: 0,
            book: deploy::Book::default(),
            jobs: Vec::new(),
            drains: drain::Drains::default(),
            clock: None,
        };
        core.rebuild();
        core
    }

    /// Feed one event at time `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let before = self.pids();
        let mut out = Vec::new();
        // Draining is per backend key, whatever owns it (`drain.rs`): the owner sees only the
        // final `Exited`.
        match &event {
            Event::MainExited(exit) => {
                self.on_main_exited(now, exit.clone(), &mut out);
                return out;
            }
            Event::Exited { unit, pid, .. } | Event::ExecFailed { unit, pid, .. } => {
                self.drain_ended(unit, *pid)
            }
            Event::Tick => self.drain_tick(now, &mut out),
            _ => {}
        }
        match event {
            // Every adoption lands before the reconcile pass below: dependencies are judged
            // only once the core knows every surviving process.
            Event::AdoptedAll(list) => {
                for adoption in list {
                    self.dispatch_adoption(now, adoption, &mut out);
                }
            }
            event => self.dispatch(now, event, &mut out),
        }
        self.reconcile(now, &mut out);
        self.deploy_step(now, &mut out);
        self.issue_probes(now, &mut out);
        self.cron_due(now, &mut out);
        if self.pids() != before {
            out.push(Action::Persist);
        }
        out
    }

    /// `dispatch` of one adoption of a batch: as `Event::Adopted`, with the process's start
    /// time when the runtime knows it.
    fn dispatch_adoption(&mut self, now: Instant, a: Adoption, out: &mut Vec<Action>) {
        let event = Event::Adopted {
            unit: a.unit.clone(),
            pid: a.pid,
        };
        self.cron_event(now, &event, out);
        match self.deploy_intercept(now, event, out) {
            Some(Event::Adopted { unit, pid }) => self.on_adopted(now, &unit, pid, a.started, out),
            // A deployment's promoted instance (`service~N`) became its unit's process.
            _ => self.backdate(service_of(&a.unit), a.pid, a.started.map(|t| t.min(now))),
        }
    }

    /// Mark the unit's current process `pid` adopted, running since `started` when known.
    fn backdate(&mut self, name: &str, pid: u32, started: Option<Instant>) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        if u.pid == Some(pid) && matches!(u.state, State::Running { .. }) {
            u.adopted = true;
            if let Some(t) = started {
                u.running_since = Some(t);
            }
        }
    }

    /// Apply one event to the state, without the reconcile pass that follows every `handle`.
    fn dispatch(&mut self, now: Instant, event: Event, out: &mut Vec<Action>) {
        // A refusal concerns a service's own start; for a cron run or a deployment's candidate
        // it is a failed start like any other.
        let event = match event {
            Event::StartRefused { unit, error } if self.find(&unit).is_none() => {
                Event::StartFailed { unit, error }
            }
            event => event,
        };
        // Cron jobs see every event first; the service code below ignores names it does not know.
        self.cron_event(now, &event, out);
        // Events about a deployment's candidate or a draining old instance never reach the
        // unit state machine; events of a promoted instance are renamed to their unit.
        let Some(event) = self.deploy_intercept(now, event, out) else {
            return;
        };
        match event {
            Event::Request(request) => self.request(now, request, out),
            Event::Started { unit, pid } => self.on_started(now, &unit, pid, out),
            Event::StartFailed { unit, error } => {
                self.on_start_failed(now, &unit, Ending::StartFailed(error), out)
            }
            Event::StartRefused { unit, error } => {
                self.on_start_failed(now, &unit, Ending::Refused(error), out)
            }
            Event::Exited { unit, pid, status } => self.on_exited(now, &unit, pid, status, out),
            Event::ExecFailed { unit, pid, error } => {
                self.on_exec_failed(now, &unit, pid, error, out)
            }
            Event::Adopted { unit, pid } => self.on_adopted(now, &unit, pid, None, out),
            Event::StoppedOutside { unit, pid, status } => {
                self.on_stopped_outside(now, &unit, pid, status, out)
            }
            Event::StartedOutside { unit, pid } => self.on_started_outside(now, &unit, pid, out),
            Event::RestartedOutside { unit, old, pid } => {
                self.on_restarted_outside(now, &unit, old, pid, out)
            }
            Event::ProbeResult {
                unit,
                probe,
                ok,
                detail,
            } => self.on_probe_result(now, &unit, probe, ok, detail, out),
            Event::Tick => self.on_tick(now, out),
            Event::Notify { unit, pid, message } => self.on_notify(now, &unit, pid, message, out),
            Event::ReloadSent { unit } => self.on_reload_sent(now, &unit),
            // Consumed by `deploy_intercept`; batches are split by `handle`.
            Event::Deploy(_) | Event::AdoptedAll(_) => {}
            Event::Elapsed { .. } | Event::TimerFailed { .. } | Event::MainExited(_) => {}
        }
    }

    // ----- bookkeeping -----

    fn rebuild(&mut self) {
        self.index = self
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.plan.name.clone(), i))
            .collect();
        let (order, in_cycle) = deps::topo_order(&self.units);
        for (u, c) in self.units.iter_mut().zip(in_cycle) {
            u.in_cycle = c;
        }
        self.order = order;
    }

    fn pids(&self) -> Vec<(String, u32)> {
        let mut pids: Vec<_> = self
            .units
            .iter()
            .filter_map(|u| u.pid.map(|p| (u.plan.name.clone(), p)))
            .collect();
        pids.sort();
        pids
    }

    /// Indices of every unit still in the plan.
    fn all(&self) -> Vec<usize> {
        (0..self.units.len())
            .filter(|&i| !self.units[i].removed)
            .collect()
    }

    /// Indices of the named units that are in the plan; unknown names are ignored.
    fn resolve(&self, names: &[UnitId]) -> Vec<usize> {
        let mut out: Vec<usize> = names
            .iter()
            .filter_map(|n| self.index.get(n).copied())
            .filter(|&i| !self.units[i].removed)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    // ----- backend events -----

    fn on_started(&mut self, now: Instant, name: &str, pid: u32, out: &mut Vec<Action>) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        match &mut u.state {
            State::Starting => {
                u.pid = Some(pid);
                u.running_since = Some(now);
                u.healthy = false;
                u.up_at = now
                    .checked_add(u.plan.settle)
                    .filter(|_| !u.plan.settle.is_zero());
                u.set(now, State::Running { pending_stop: None }, None);
                u.ready.begin(now, &u.plan.spec.readiness);
                report(
                    out,
                    name,
                    ReportKind::Started,
                    format!("started (pid {pid})"),
                );
                notify(
                    out,
                    name,
                    NoticeKind::Start,
                    Some(pid),
                    None,
                    format!("started (pid {pid})"),
                );
                if u.plan.health.is_some() {
                    // Healthy only once a probe passes; the first one is issued right away.
                    u.probe.begin(now);
                } else if u.up_at.is_none() && u.ready.awaiting.is_none() {
                    u.failing_start = None;
                    // Without probes a process that is up counts as healthy.
                    u.healthy = true;
                    notify(
                        out,
                        name,
                        NoticeKind::Ready,
                        Some(pid),
                        None,
                        "ready".to_string(),
                    );
                }
            }
            State::Stopping {
                signalled,
                signal,
                timeout,
                kill_at,
                ..
            } if !*signalled => {
                // The stop was decided while the start was in flight: deliver it now.
                *signalled = true;
                *kill_at = now.checked_add(*timeout);
                out.push(Action::Signal {
                    unit: u.instance.clone(),
                    signal: *signal,
                });
                u.pid = Some(pid);
                u.running_since = Some(now);
                notify(
                    out,
                    name,
                    NoticeKind::Start,
                    Some(pid),
                    None,
                    format!("started (pid {pid}), stopping"),
                );
            }
            // Stale or unexpected: the unit is not waiting for a process.
            _ => {}
        }
    }

    /// A process found running at start-up becomes the unit's: its uptime counts from
    /// `started` (when known, never later than now), and the report says since when it runs.
    fn on_adopted(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        started: Option<Instant>,
        out: &mut Vec<Action>,
    ) {
        let started = started.map(|t| t.min(now));
        let since = started
            .and_then(|t| self.wall_at(t))
            .map(|w| format!("running since {}, ", w.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        self.take_over(now, name, pid, format!("adopted ({since}pid {pid})"), out);
        self.backdate(name, pid, started);
    }

    /// Make `pid`, a process the core did not start, the running process of unit `name` (an
    /// adopted one, or one started outside sysg); `message` is the report. Nothing happens
    /// for a unit that already has a process or is being created.
    fn take_over(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        message: String,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        // Never replace a process the core already tracks or is creating.
        if u.removed || u.is_live() {
            return;
        }
        u.pid = Some(pid);
        u.running_since = Some(now);
        u.adopted = false;
        u.wanted = true;
        u.up_at = None;
        u.failing_start = None;
        // Without probes an adopted process is taken as up; with them, it is probed afresh
        // (already running dependents are left alone while the first probe is pending).
        u.healthy = u.plan.health.is_none();
        if u.plan.health.is_some() {
            u.probe.begin(now);
        }
        u.ready.taken_over(now, &u.plan.spec.readiness);
        // Nothing is known about this process's history: it has not completed yet.
        u.succeeded = false;
        u.set(now, State::Running { pending_stop: None }, None);
        report(out, name, ReportKind::Started, message);
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.probe_timeouts(now, out);
        self.readiness_due(now, out);
        for u in &mut self.units {
            if u.up_at.is_some_and(|t| t <= now) {
                // Survived the settle window: it started (dependents may go). With a health
                // check, only a passing probe makes it healthy.
                u.up_at = None;
                u.failing_start = None;
                if u.plan.health.is_none() && !u.healthy && u.ready.awaiting.is_none() {
                    u.healthy = true;
                    notify(
                        out,
                        &u.plan.name,
                        NoticeKind::Ready,
                        u.pid,
                        None,
                        "ready".to_string(),
                    );
                }
            }
            match &mut u.state {
                State::Backoff { at: Some(at) } if *at <= now => {
                    // Back to Waiting: reconcile starts it if its dependencies still hold.
                    u.set(now, State::Waiting, None);
                }
                State::Stopping { kill_at, .. } if kill_at.is_some_and(|t| t <= now) => {
                    *kill_at = None;
                    out.push(Action::Kill {
                        unit: u.instance.clone(),
                    });
                    report(
                        out,
                        &u.plan.name,
                        ReportKind::Stopped,
                        "stop timeout reached, killing".to_string(),
                    );
                }
                _ => {}
            }
        }
    }
}

/// Keep the first unit of each name: names are keys, and the runtime validated the plan.
fn dedup(plan: Vec<UnitPlan>) -> Vec<UnitPlan> {
    let mut seen = HashSet::new();
    plan.into_iter()
        .filter(|p| seen.insert(p.name.clone()))
        .collect()
}
