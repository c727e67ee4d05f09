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

impl Core {
    /// Set the deployment plans (units absent here deploy `immediate`ly). The runtime calls
    /// this at start-up and before every reload; a deployment under way keeps its plan.
    pub fn set_deployments(&mut self, plans: HashMap<UnitId, Arc<DeployPlan>>) {
        self.book.slots = plans
            .iter()
            .filter_map(|(n, p)| {
                p.blue_green
                    .as_ref()
                    .map(|bg| (n.clone(), bg.active.min(1)))
            })
            .collect();
        self.book.plans = plans;
    }

    /// Id of the last deployment begun; results of later ones have larger ids.
    pub fn deploy_seq(&self) -> u64 {
        self.book.seq
    }

    /// Why deployments of `units` (all when `None`) begun after `since` failed, one line each.
    pub fn deploy_failures(&self, units: Option<&[UnitId]>, since: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .book
            .results
            .iter()
            .filter(|(n, r)| !r.ok && r.seq > since && units.is_none_or(|s| s.contains(n)))
            .map(|(n, r)| format!("{n}: {}", r.message))
            .collect();
        out.sort();
        out
    }

    /// A deployment of one of `units` (all when `None`) is under way or still draining.
    pub fn deploying(&self, units: Option<&[UnitId]>) -> bool {
        match units {
            None => !self.book.idle(),
            Some(names) => names.iter().any(|n| self.book.busy(n)),
        }
    }

    /// The backend key of `unit`'s current process (`web`, or `web~N` after a deployment).
    pub fn instance(&self, unit: &str) -> Option<String> {
        let u = &self.units[self.find(unit)?];
        u.pid.map(|_| u.instance.clone())
    }

    /// The active slot of a blue-green unit.
    pub fn active_slot(&self, unit: &str) -> Option<usize> {
        self.book.slots.get(unit).copied()
    }

    /// Handle `event` if it concerns a candidate, a draining process, a promoted instance or
    /// a duplicate adoption; return what is left for the unit state machine.
    pub(crate) fn deploy_intercept(
        &mut self,
        now: Instant,
        event: Event,
        out: &mut Vec<Action>,
    ) -> Option<Event> {
        match event {
            Event::Deploy(DeployEvent::CommandDone {
                unit,
                run,
                ok,
                detail,
            }) => {
                self.command_done(now, &unit, run, ok, detail, out);
                None
            }
            Event::Started { unit: key, pid } => {
                if let Some(name) = self.candidate(&key) {
                    let readiness = self.find(&name).map(|i| self.units[i].plan.spec.readiness);
                    let d = self.book.active.get_mut(&name)?;
                    if matches!(d.phase, Phase::Starting) {
                        d.phase = Phase::Probing(Trial {
                            pid,
                            since: now,
                            settle_at: if d.health.is_none() {
                                now.checked_add(d.settle)
                            } else {
                                None
                            },
                            next_at: d.health.as_ref().map(|_| now),
                            in_flight: None,
                            issued: None,
                            warmup: Warmup::new(now),
                            counted: 0,
                            streak: 0,
                            last_error: None,
                            awaiting_ready: None,
                        });
                        if let Phase::Probing(t) = &mut d.phase {
                            super::readiness::candidate_started(now, t, readiness);
                        }
                        if let Some(i) = self.find(&name) {
                            self.units[i].reason = Some(format!(
                                "deploying: waiting for the new instance (pid {pid}) to become healthy"
                            ));
                        }
                        report(
                            out,
                            &name,
                            ReportKind::Started,
                            format!("new instance started as {key} (pid {pid})"),
                        );
                        // Recorded for adoption: a supervisor restart must find it.
                        out.push(Action::Persist);
                    }
                    return None;
                }
                if let Some(dr) = self
                    .book
                    .drains
                    .iter_mut()
                    .find(|d| d.key == key && d.pid.is_none())
                {
                    dr.pid = Some(pid);
                    out.push(Action::Persist);
                    return None;
                }
                Some(Event::Started { unit: key, pid })
            }
            Event::Notify {
                unit: key,
                pid,
                message,
            } if service_of(&key) != key => {
                let Some(name) = self.candidate(&key) else {
                    // A promoted instance speaks for its unit; an old one being retired not.
                    let name = service_of(&key).to_string();
                    let current = self
                        .find(&name)
                        .is_some_and(|i| self.units[i].instance == key);
                    return current.then_some(Event::Notify {
                        unit: name,
                        pid,
                        message,
                    });
                };
                // Only READY=1 matters for a candidate: it may now be judged.
                let d = self.book.active.get_mut(&name)?;
                if let (Phase::Probing(t), true) = (&mut d.phase, message.ready) {
                    if t.awaiting_ready.take().is_some() {
                        t.settle_at = d
                            .health
                            .is_none()
                            .then(|| now.checked_add(d.settle))
                            .flatten();
                        t.next_at = d.health.as_ref().map(|_| now);
                    }
                }
                None
            }
            Event::StartFailed { unit: key, error } => {
                if let Some(name) = self.candidate(&key) {
                    let why = format!("the new instance could not start: {error}");
                    self.fail_named(now, &name, &why, true, out);
                    return None;
                }
                if let Some(pos) = self
                    .book
                    .drains
                    .iter()
                    .position(|d| d.key == key && d.pid.is_none())
                {
                    self.book.drains.remove(pos);
                    return None;
                }
                Some(Event::StartFailed { unit: key, error })
            }
            Event::Exited {
                unit: key,
                pid,
                status,
            } => {
                if let Some(name) = self.candidate(&key) {
                    if self.candidate_pid(&name) == Some(pid) {
                        let why = format!("the new instance exited ({status})");
                        self.fail_named(now, &name, &why, true, out);
                        out.push(Action::Persist);
                    }
                    return None;
                }
                if let Some(pos) = self
                    .book
                    .drains
                    .iter()
                    .position(|d| d.key == key && d.pid == Some(pid))
                {
                    let d = self.book.drains.remove(pos);
                    report(
                        out,
                        &d.unit,
                        ReportKind::Stopped,
                        format!("instance {key} (pid {pid}) stopped ({status})"),
                    );
                    out.push(Action::Persist);
                    return None;
                }
                let name = service_of(&key).to_string();
                if name != key {
                    // A promoted instance: the unit's own process, under its own name.
                    return Some(Event::Exited {
                        unit: name,
                        pid,
                        status,
                    });
                }
                Some(Event::Exited {
                    unit: key,
                    pid,
                    status,
                })
            }
            Event::ExecFailed {
                unit: key,
                pid,
                error,
            } => {
                if let Some(name) = self.candidate(&key) {
                    if self.candidate_pid(&name) == Some(pid) {
                        let why = format!("the new instance could not start: {error}");
                        self.fail_named(now, &name, &why, true, out);
                        out.push(Action::Persist);
                    }
                    return None;
                }
                // An instance that never ran cannot be draining; a promoted one is the unit's.
                Some(Event::ExecFailed {
                    unit: service_of(&key).to_string(),
                    pid,
                    error,
                })
            }
            Event::ProbeResult {
                unit: key,
                probe,
                ok,
                detail,
            } => {
                if let Some(name) = self.candidate(&key) {
                    self.trial_result(now, &name, probe, ok, detail, out);
                    return None;
                }
                Some(Event::ProbeResult {
                    unit: key,
                    probe,
                    ok,
                    detail,
                })
            }
            Event::Adopted { unit: key, pid } => {
                let name = service_of(&key).to_string();
                let Some(i) = self.find(&name) else {
                    return Some(Event::Adopted { unit: key, pid });
                };
                let u = &self.units[i];
                if u.is_live() && u.pid != Some(pid) {
                    // Two processes of one unit: a supervisor died during a deployment. The
                    // one adopted first (the runtime puts the instance of record first) stays.
                    let (signal, timeout) = (u.plan.spec.stop_signal, u.plan.spec.stop_timeout);
                    report(
                        out,
                        &name,
                        ReportKind::Stopped,
                        format!(
                            "stopping {key} (pid {pid}), left over from an interrupted deployment"
                        ),
                    );
                    self.book.drains.push(Drain {
                        unit: name,
                        key,
                        pid: Some(pid),
                        signal,
                        timeout,
                        stop_at: Some(now),
                        signalled: false,
                        kill_at: None,
                    });
                    return None;
                }
                if key != name && !u.is_live() && !u.removed {
                    self.on_adopted(now, &name, pid, None, out);
                    self.units[i].instance = key;
                    return None;
                }
                Some(Event::Adopted { unit: key, pid })
            }
            other => Some(other),
        }
    }

    /// The unit whose deployment under way has candidate `key`.
    /// The pid of the candidate of `name`'s deployment under way, once it runs.
    fn candidate_pid(&self, name: &str) -> Option<u32> {
        self.book.active.get(name).and_then(|d| match &d.phase {
            Phase::Probing(t) => Some(t.pid),
            Phase::Switching { pid, .. } => Some(*pid),
            _ => None,
        })
    }

    fn candidate(&self, key: &str) -> Option<UnitId> {
        let name = service_of(key);
        self.book
            .active
            .get(name)
            .filter(|d| d.key == key)
            .map(|_| name.to_string())
    }

    /// Fail the deployment of `name`; `gone`: its candidate has no process (left) to stop.
    fn fail_named(
        &mut self,
        now: Instant,
        name: &str,
        why: &str,
        gone: bool,
        out: &mut Vec<Action>,
    ) {
        if let (Some(i), Some(d)) = (self.find(name), self.book.active.remove(name)) {
            fail(&mut self.book, now, &mut self.units[i], d, why, gone, out);
        }
    }

    fn command_done(
        &mut self,
        now: Instant,
        name: &str,
        run: u64,
        ok: bool,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let Some(d) = self.book.active.get_mut(name) else {
            return;
        };
        match d.phase {
            Phase::PreStart { run: r, .. } if r == run => {
                if ok {
                    start_candidate(&mut self.units[i], d, out);
                } else {
                    self.fail_named(
                        now,
                        name,
                        &format!("pre_start failed: {detail}"),
                        false,
                        out,
                    );
                }
            }
            Phase::Switching {
                pid, since, run: r, ..
            } if r == run => {
                if ok {
                    self.promote(now, i, pid, since, out);
                } else {
                    self.fail_named(
                        now,
                        name,
                        &format!("switch_command failed: {detail}"),
                        false,
                        out,
                    );
                }
            }
            // A stale answer (the deployment moved on or was replaced).
            _ => {}
        }
    }

    fn trial_result(
        &mut self,
        now: Instant,
        name: &str,
        probe: u64,
        ok: bool,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let Some(d) = self.book.active.get_mut(name) else {
            return;
        };
        let Some(check) = d.health.clone() else {
            return;
        };
        let Phase::Probing(t) = &mut d.phase else {
            return;
        };
        if t.in_flight.map(|(id, _)| id) != Some(probe) {
            return;
        }
        t.in_flight = None;
        let issued = t.issued.take().unwrap_or(now);
        if ok {
            self.healthy(now, name, out);
            return;
        }
        t.streak = t.streak.saturating_add(1);
        t.last_error = Some(detail.clone());
        let (on_slot, next) = t.warmup.failed(issued, now, &check);
        t.next_at = next;
        if !on_slot {
            return;
        }
        let in_start_period = t
            .since
            .checked_add(check.start_period)
            .is_some_and(|end| now < end);
        if in_start_period {
            return;
        }
        t.counted = t.counted.saturating_add(1);
        if t.counted >= check.retries.max(1) {
            let n = t.streak;
            let why = format!(
                "the new instance did not become healthy ({n} probe{} failed: {detail})",
                if n == 1 { "" } else { "s" }
            );
            self.fail_named(now, name, &why, false, out);
        }
    }

    /// The candidate of `name` passed: switch (blue-green with a command) or promote.
    fn healthy(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        let Some(i) = self.find(name) else { return };
        let switch = self
            .book
            .plans
            .get(name)
            .and_then(|p| p.blue_green.clone())
            .and_then(|bg| bg.switch_command.clone().map(|c| (bg, c)));
        let active = self.book.slots.get(name).copied();
        self.book.runs += 1;
        let run = self.book.runs;
        let Some(d) = self.book.active.get_mut(name) else {
            return;
        };
        let Phase::Probing(t) = &d.phase else { return };
        let (pid, since) = (t.pid, t.since);
        match (switch, d.slot) {
            (Some((bg, command)), Some(target)) => {
                let active = active.unwrap_or(bg.active).min(1);
                let command = command
                    .replace("{candidate_slot}", &bg.slots[target])
                    .replace("{active_slot}", &bg.slots[active]);
                out.push(Action::Deploy(DeployAction::Run {
                    unit: name.to_string(),
                    run,
                    step: Step::Switch,
                    command,
                    spec: d.spec.clone(),
                    timeout: COMMAND_TIMEOUT,
                }));
                d.phase = Phase::Switching {
                    pid,
                    since,
                    run,
                    give_up: give_up(now, COMMAND_TIMEOUT, COMMAND_GRACE),
                };
                self.units[i].reason =
                    Some(format!("deploying: switching to slot {}", bg.slots[target]));
            }
            _ => self.promote(now, i, pid, since, out),
        }
    }

    /// The candidate (pid `pid`, up since `since`) becomes unit `i`'s process; the old one
    /// drains for the grace period.
    fn promote(&mut self, now: Instant, i: usize, pid: u32, since: Instant, out: &mut Vec<Action>) {
        let name = self.units[i].plan.name.clone();
        let Some(d) = self.book.active.remove(&name) else {
            return;
        };
        let u = &mut self.units[i];
        let old_key = std::mem::replace(&mut u.instance, d.key.clone());
        let old_pid = u.pid.replace(pid).unwrap_or(d.old_pid);
        u.running_since = Some(since);
        if let Some(plan) = d.plan {
            u.plan = plan;
        }
        u.plan.spec = d.service_spec.clone();
        u.up_at = None;
        u.healthy = true;
        u.consecutive = 0;
        u.succeeded = false;
        if u.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("deploying"))
        {
            u.reason = None;
        }
        if let Some(check) = u.plan.health.clone() {
            // It just passed its trial: healthy, next probe one interval from now.
            u.probe.begin(now);
            u.probe.status = Some(Health::Healthy);
            u.probe.passed = true;
            u.probe.next_at = now.checked_add(check.interval);
        }
        self.book.drains.push(Drain {
            unit: name.clone(),
            key: old_key,
            pid: Some(old_pid),
            signal: d.old_signal,
            timeout: d.old_timeout,
            stop_at: now.checked_add(d.grace),
            signalled: false,
            kill_at: None,
        });
        let mut slot_name = None;
        if let (Some(target), Some(bg)) = (
            d.slot,
            self.book
                .plans
                .get(&name)
                .and_then(|p| p.blue_green.clone()),
        ) {
            self.book.slots.insert(name.clone(), target);
            slot_name = Some(bg.slots[target].clone());
            out.push(Action::Deploy(DeployAction::SaveSlot {
                unit: name.clone(),
                path: bg.state_path.clone(),
                slots: bg.slots.clone(),
                active: target,
            }));
        }
        let message = match &slot_name {
            Some(s) => format!("deployed: pid {pid} replaces pid {old_pid}; slot {s} is active"),
            None => format!("deployed: pid {pid} replaces pid {old_pid}"),
        };
        report(out, &name, ReportKind::Deployed, message.clone());
        announce(&self.book, out, &name, Some(pid), true, slot_name, message);
        self.book.results.insert(
            name,
            DeployResult {
                seq: d.id,
                ok: true,
                message: "deployed".to_string(),
            },
        );
    }

    /// After every event: abandon deployments whose unit stopped being what they replace,
    /// fire deployment timers, issue candidate probes, and move draining processes along.
    pub(crate) fn deploy_step(&mut self, now: Instant, out: &mut Vec<Action>) {
        let names: Vec<UnitId> = self.book.active.keys().cloned().collect();
        for name in names {
            let Some(i) = self.find(&name) else {
                self.book.active.remove(&name);
                continue;
            };
            let Some(d) = self.book.active.get(&name) else {
                continue;
            };
            let u = &self.units[i];
            let intact = u.state == (State::Running { pending_stop: None })
                && !u.removed
                && u.pid == Some(d.old_pid);
            if !intact {
                let why = if !u.wanted || u.removed {
                    "the service was stopped during the deployment"
                } else {
                    "the running instance went away during the deployment"
                };
                self.fail_named(now, &name, why, false, out);
                continue;
            }
            self.deploy_timers(now, &name, out);
        }
        self.drain_step(now, out);
    }

    fn deploy_timers(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        enum Due {
            Nothing,
            Fail(String),
            Healthy,
            ProbeLost(u64, String),
            Probe,
        }
        let Some(d) = self.book.active.get(name) else {
            return;
        };
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let what = match &d.phase {
            Phase::PreStart { give_up, .. } if due(*give_up) => Due::Fail(format!(
                "pre_start did not finish within {COMMAND_TIMEOUT:?}"
            )),
            Phase::Switching { give_up, .. } if due(*give_up) => Due::Fail(format!(
                "switch_command did not finish within {COMMAND_TIMEOUT:?}"
            )),
            Phase::Probing(t) if due(t.awaiting_ready) => Due::Fail(format!(
                "the new instance sent no READY=1 within start_timeout ({:?})",
                self.find(name)
                    .map(|i| self.units[i].plan.spec.readiness.start_timeout)
                    .unwrap_or_default()
            )),
            Phase::Probing(t) if due(t.settle_at) => Due::Healthy,
            Phase::Probing(t) => match (&d.health, t.in_flight) {
                (Some(check), Some((id, g))) if due(g) => {
                    Due::ProbeLost(id, format!("no answer within {:?}", check.timeout))
                }
                (Some(_), None) if due(t.next_at) => Due::Probe,
                _ => Due::Nothing,
            },
            _ => Due::Nothing,
        };
        match what {
            Due::Nothing => {}
            Due::Fail(why) => self.fail_named(now, name, &why, false, out),
            Due::Healthy => self.healthy(now, name, out),
            Due::ProbeLost(id, detail) => self.trial_result(now, name, id, false, detail, out),
            Due::Probe => {
                self.probe_seq += 1;
                let probe = self.probe_seq;
                let Some(d) = self.book.active.get_mut(name) else {
                    return;
                };
                let (Phase::Probing(t), Some(check)) = (&mut d.phase, d.health.clone()) else {
                    return;
                };
                t.next_at = None;
                t.in_flight = Some((probe, give_up(now, check.timeout, PROBE_GRACE)));
                t.issued = Some(now);
                out.push(Action::Probe {
                    unit: d.key.clone(),
                    probe,
                    check,
                    spec: d.spec.clone(),
                });
            }
        }
    }

    fn drain_step(&mut self, now: Instant, out: &mut Vec<Action>) {
        for dr in &mut self.book.drains {
            // The unit is going down anyway: its old instance need not wait out the grace.
            let unit_down = self
                .index
                .get(&dr.unit)
                .map(|&i| &self.units[i])
                .is_none_or(|u| !u.wanted || u.removed);
            if unit_down && !dr.signalled {
                dr.stop_at = Some(now);
            }
            if !dr.signalled && dr.pid.is_some() && dr.stop_at.is_some_and(|t| t <= now) {
                dr.signalled = true;
                dr.stop_at = None;
                dr.kill_at = now.checked_add(dr.timeout);
                out.push(Action::Signal {
                    unit: dr.key.clone(),
                    signal: dr.signal,
                });
            }
            if dr.kill_at.is_some_and(|t| t <= now) {
                dr.kill_at = None;
                out.push(Action::Kill {
                    unit: dr.key.clone(),
                });
                report(
                    out,
                    &dr.unit,
                    ReportKind::Stopped,
                    format!("{} did not stop in time, killing", dr.key),
                );
            }
        }
    }
}
