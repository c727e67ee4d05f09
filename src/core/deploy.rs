//! Rolling and blue-green deployments: replace a running service without a moment where
//! nothing serves.
//!
//! A deployment of unit `web` (on `sysg restart`, or when a reload changes it) runs:
//! `pre_start` (a command; its failure ends the deployment before anything started) → the
//! candidate starts *beside* the old process under its own backend key `web~N` → it must
//! become healthy (its probe passes; without any health check it must stay up for the settle
//! window, at least `MIN_DEPLOY_SETTLE`) → blue-green only: `switch_command` runs → the
//! candidate is promoted to the unit's process of record (`Unit::instance = "web~N"`), and the
//! old process is kept for `grace_period`, then stopped ("drained"). Any failure before the
//! promotion stops the candidate and leaves the old process exactly as it was.
//!
//! The unit's own state machine never sees the candidate: its events are intercepted here
//! (`deploy_intercept`) and its timers live in the `Book`. Keys are never reused while a
//! process holds them: a normal start always uses the service name, candidates use `name~N`
//! with `N` fresh, so the backend can always start the candidate beside the old one.
//! Decisions are listed in STATES.md ("Deployments").

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::notice::{Notice, NoticeKind};
use super::probe::{Health, Warmup, PROBE_GRACE};
use super::unit::{report, State, Unit};
use super::{Action, Core, Event, ReportKind, UnitId, UnitPlan};
use crate::config::schema::HealthCheck;
use crate::spec::UnitSpec;
pub use crate::spec::{instance_key, service_of};

/// Queries and the interception of events (intercept.rs).
mod intercept;
/// Commands, trials, promotion, timers and draining (progress.rs).
mod progress;

/// Bound on `pre_start` and `switch_command` (they build or reconfigure; minutes are normal,
/// hours are a hang).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Without any health check, a candidate is healthy once it has stayed up this long (or the
/// unit's settle window, if longer): a process that crashes on start-up is caught, and the
/// old one is still serving meanwhile.
pub const MIN_DEPLOY_SETTLE: Duration = Duration::from_secs(1);

/// Time granted to a command beyond its timeout before the core gives up on its answer (the
/// runtime kills it at the timeout; this only guards against a lost answer).
const COMMAND_GRACE: Duration = Duration::from_secs(5);

/// How one unit is deployed side by side (absent for `strategy: immediate`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeployPlan {
    /// Runs before the candidate starts, with its environment and working directory.
    pub pre_start: Option<String>,
    /// `deployment.health_check`, else the service's; `None`: the settle window decides.
    pub health: Option<Arc<HealthCheck>>,
    /// How long the old process keeps running after the promotion.
    pub grace: Duration,
    pub blue_green: Option<BlueGreenPlan>,
}

/// The blue-green part of a deployment plan.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenPlan {
    /// The variable that tells an instance its slot.
    pub env_var: String,
    pub slots: [String; 2],
    /// Runs after the candidate is healthy, with `{candidate_slot}` and `{active_slot}`
    /// substituted; its failure rolls the deployment back.
    pub switch_command: Option<String>,
    /// Where the runtime persists the active slot.
    pub state_path: PathBuf,
    /// The active slot's index as persisted when the plan was made.
    pub active: usize,
}

/// A command step of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    PreStart,
    Switch,
}

impl Step {
    /// The config name of the step.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::PreStart => "pre_start",
            Step::Switch => "switch_command",
        }
    }
}

/// Effects of a deployment the runtime carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployAction {
    /// Run `/bin/sh -c command` off the event loop with `spec`'s environment, working
    /// directory and identity, killed after `timeout`; answer with `DeployEvent::CommandDone`.
    Run {
        unit: UnitId,
        run: u64,
        step: Step,
        command: String,
        spec: Arc<UnitSpec>,
        timeout: Duration,
    },
    /// Persist the active slot of `unit` atomically at `path`.
    SaveSlot {
        unit: UnitId,
        path: PathBuf,
        slots: [String; 2],
        active: usize,
    },
}

/// Answers to `DeployAction`s.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployEvent {
    /// The command `run` ended: `ok` when it exited 0; `detail` says how it failed.
    CommandDone {
        unit: UnitId,
        run: u64,
        ok: bool,
        detail: String,
    },
}

/// How a deployment ended, for hooks and webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployOutcome {
    /// The new instance serves (true), or the old one was kept (false).
    pub ok: bool,
    /// `rolling` or `blue_green`.
    pub strategy: &'static str,
    /// Blue-green: the slot active after the deployment.
    pub slot: Option<String>,
}

/// The end of the last deployment of a unit, for the control reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeployResult {
    seq: u64,
    ok: bool,
    message: String,
}

/// Everything about deployments the core keeps.
#[derive(Debug, Default)]
pub(crate) struct Book {
    plans: HashMap<UnitId, Arc<DeployPlan>>,
    /// Active slot per blue-green unit (from the plan, then from promotions).
    slots: HashMap<UnitId, usize>,
    active: BTreeMap<UnitId, Deploy>,
    /// Processes being stopped beside their unit's process: old instances after a promotion,
    /// failed candidates, duplicates found at adoption.
    drains: Vec<Drain>,
    results: HashMap<UnitId, DeployResult>,
    /// Last deployment id (also the source of candidate numbers).
    seq: u64,
    /// Last command run id.
    runs: u64,
}

/// One deployment under way.
#[derive(Debug)]
struct Deploy {
    id: u64,
    /// The candidate's backend key.
    key: String,
    /// The candidate's spec (named by `key`).
    spec: Arc<UnitSpec>,
    /// The same spec under the service's name: the unit's spec after the promotion.
    service_spec: Arc<UnitSpec>,
    /// A reload's new plan for the unit, swapped in at the promotion: until then the unit
    /// keeps the plan its running process was started with (probes use its environment).
    plan: Option<UnitPlan>,
    /// The process being replaced, and how to stop it (from the spec it was started with).
    old_pid: u32,
    old_signal: i32,
    old_timeout: Duration,
    /// Blue-green: the candidate's slot.
    slot: Option<usize>,
    health: Option<Arc<HealthCheck>>,
    settle: Duration,
    grace: Duration,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// `pre_start` is running.
    PreStart { run: u64, give_up: Option<Instant> },
    /// `Action::Start` of the candidate issued.
    Starting,
    /// The candidate runs; waiting for it to become healthy.
    Probing(Trial),
    /// Blue-green: `switch_command` is running.
    Switching {
        pid: u32,
        since: Instant,
        run: u64,
        give_up: Option<Instant>,
    },
}

/// A candidate on trial.
#[derive(Debug)]
pub(crate) struct Trial {
    pid: u32,
    since: Instant,
    /// Without a health check: when the settle window ends.
    pub(crate) settle_at: Option<Instant>,
    pub(crate) next_at: Option<Instant>,
    in_flight: Option<(u64, Option<Instant>)>,
    /// When the probe in flight was issued.
    issued: Option<Instant>,
    /// Fast retries until the candidate passes; only failures on the regular schedule count.
    warmup: Warmup,
    /// Consecutive failures that count towards `retries` (outside `start_period`).
    counted: u32,
    streak: u32,
    last_error: Option<String>,
    /// `readiness: notify`: until `READY=1`, neither settle window nor probes run; the trial
    /// fails at this deadline (`start_timeout`).
    pub(crate) awaiting_ready: Option<Instant>,
}

/// A process being stopped beside its unit's process of record.
#[derive(Debug)]
struct Drain {
    unit: UnitId,
    key: String,
    /// `None` while its start is still in flight (signalled once it is known).
    pid: Option<u32>,
    signal: i32,
    timeout: Duration,
    /// End of the grace period; the stop signal goes out then.
    stop_at: Option<Instant>,
    signalled: bool,
    kill_at: Option<Instant>,
}

impl Book {
    /// A deployment or a drain of `unit` is under way.
    pub(crate) fn busy(&self, unit: &str) -> bool {
        self.active.contains_key(unit) || self.drains.iter().any(|d| d.unit == unit)
    }

    /// No process is tracked here.
    pub(crate) fn idle(&self) -> bool {
        self.active.is_empty() && self.drains.is_empty()
    }

    /// The earliest timer.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let deploys = self.active.values().filter_map(|d| match &d.phase {
            Phase::PreStart { give_up, .. } | Phase::Switching { give_up, .. } => *give_up,
            Phase::Starting => None,
            Phase::Probing(t) => {
                let give_up = t.in_flight.and_then(|(_, g)| g);
                [t.settle_at, t.next_at, give_up, t.awaiting_ready]
                    .into_iter()
                    .flatten()
                    .min()
            }
        });
        let drains = self.drains.iter().filter_map(|d| {
            let stop = d.stop_at.filter(|_| !d.signalled && d.pid.is_some());
            [stop, d.kill_at].into_iter().flatten().min()
        });
        deploys.chain(drains).min()
    }

    fn strategy(&self, unit: &str) -> &'static str {
        match self.plans.get(unit) {
            Some(p) if p.blue_green.is_some() => "blue_green",
            _ => "rolling",
        }
    }
}

/// Start a deployment of `u` (to `new_plan`, a reload's, or its current plan) if its plan asks
/// for one and it has a running process to keep. True when a deployment is (already) under
/// way: the caller must neither stop the unit nor swap its plan. A new plan differing from the
/// one a deployment under way is heading to supersedes it: that one is rolled back first.
pub(crate) fn begin(
    book: &mut Book,
    now: Instant,
    u: &mut Unit,
    new_plan: Option<UnitPlan>,
    out: &mut Vec<Action>,
) -> bool {
    let name = u.plan.name.clone();
    let Some(plan) = book.plans.get(&name).cloned() else {
        return false;
    };
    if u.state != (State::Running { pending_stop: None }) || u.removed {
        return false;
    }
    let Some(old_pid) = u.pid else {
        return false;
    };
    if let Some(d) = book.active.get(&name) {
        if new_plan.is_none() || d.plan == new_plan {
            return true;
        }
        if let Some(d) = book.active.remove(&name) {
            fail(
                book,
                now,
                u,
                d,
                "superseded by a newer configuration",
                false,
                out,
            );
        }
    }
    // A fresh key: never the current process's, nor one still draining (the counter starts
    // again after a supervisor restart, while an adopted `web~N` may be running).
    let key = loop {
        book.seq += 1;
        let k = instance_key(&name, book.seq);
        if k != u.instance && !book.drains.iter().any(|d| d.key == k) {
            break k;
        }
    };
    let id = book.seq;
    let base = new_plan.as_ref().map_or(&u.plan.spec, |p| &p.spec);
    let mut service_spec = (**base).clone();
    let slot = plan.blue_green.as_ref().map(|bg| {
        let active = book.slots.get(&name).copied().unwrap_or(bg.active);
        let target = 1 - active.min(1);
        set_env(&mut service_spec.env, &bg.env_var, &bg.slots[target]);
        target
    });
    let mut cand = service_spec.clone();
    cand.name = key.clone();
    let cand = Arc::new(cand);
    let mut d = Deploy {
        id,
        key,
        spec: cand.clone(),
        service_spec: Arc::new(service_spec),
        plan: new_plan,
        old_pid,
        old_signal: u.plan.spec.stop_signal,
        old_timeout: u.plan.spec.stop_timeout,
        slot,
        health: plan.health.clone(),
        settle: u.plan.settle.max(MIN_DEPLOY_SETTLE),
        grace: plan.grace,
        phase: Phase::Starting,
    };
    let how = match (&plan.blue_green, slot) {
        (Some(bg), Some(t)) => format!("blue-green, candidate on slot {}", bg.slots[t]),
        _ => "rolling".to_string(),
    };
    report(
        out,
        &name,
        ReportKind::Deploying,
        format!("deploying ({how}) beside pid {old_pid}"),
    );
    match &plan.pre_start {
        Some(command) => {
            book.runs += 1;
            let run = book.runs;
            out.push(Action::Deploy(DeployAction::Run {
                unit: name.clone(),
                run,
                step: Step::PreStart,
                command: command.clone(),
                spec: cand,
                timeout: COMMAND_TIMEOUT,
            }));
            d.phase = Phase::PreStart {
                run,
                give_up: give_up(now, COMMAND_TIMEOUT, COMMAND_GRACE),
            };
            u.reason = Some("deploying: running pre_start".to_string());
        }
        None => start_candidate(u, &mut d, out),
    }
    book.active.insert(name, d);
    true
}

fn give_up(now: Instant, timeout: Duration, grace: Duration) -> Option<Instant> {
    now.checked_add(timeout).and_then(|t| t.checked_add(grace))
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

fn start_candidate(u: &mut Unit, d: &mut Deploy, out: &mut Vec<Action>) {
    out.push(Action::Start {
        unit: d.key.clone(),
        spec: d.spec.clone(),
    });
    d.phase = Phase::Starting;
    u.reason = Some("deploying: starting the new instance".to_string());
}

/// End deployment `d` of `u` as failed: its candidate (if any, and unless already `gone`) is
/// stopped, the unit keeps its process.
fn fail(
    book: &mut Book,
    now: Instant,
    u: &mut Unit,
    d: Deploy,
    why: &str,
    gone: bool,
    out: &mut Vec<Action>,
) {
    let name = u.plan.name.clone();
    let cand = match d.phase {
        _ if gone => None,
        Phase::PreStart { .. } => None,
        Phase::Starting => Some(None),
        Phase::Probing(t) => Some(Some(t.pid)),
        Phase::Switching { pid, .. } => Some(Some(pid)),
    };
    if let Some(pid) = cand {
        book.drains.push(Drain {
            unit: name.clone(),
            key: d.key.clone(),
            pid,
            signal: d.spec.stop_signal,
            timeout: d.spec.stop_timeout,
            stop_at: Some(now),
            signalled: false,
            kill_at: None,
        });
    }
    if u.reason
        .as_deref()
        .is_some_and(|r| r.starts_with("deploying"))
    {
        u.reason = None;
    }
    let message = format!("deployment failed: {why}; pid {} keeps running", d.old_pid);
    report(out, &name, ReportKind::DeployFailed, message.clone());
    let slot = book
        .plans
        .get(&name)
        .and_then(|p| p.blue_green.as_ref())
        .map(|bg| bg.slots[book.slots.get(&name).copied().unwrap_or(bg.active).min(1)].clone());
    announce(
        book,
        out,
        &name,
        Some(d.old_pid),
        false,
        slot,
        message.clone(),
    );
    book.results.insert(
        name,
        DeployResult {
            seq: d.id,
            ok: false,
            message: format!("deployment failed: {why}"),
        },
    );
}

fn announce(
    book: &Book,
    out: &mut Vec<Action>,
    unit: &str,
    pid: Option<u32>,
    ok: bool,
    slot: Option<String>,
    message: String,
) {
    out.push(Action::Notify(Notice {
        unit: unit.to_string(),
        kind: NoticeKind::Deploy,
        pid,
        exit_status: None,
        message,
        deploy: Some(DeployOutcome {
            ok,
            strategy: book.strategy(unit),
            slot,
        }),
    }));
}
