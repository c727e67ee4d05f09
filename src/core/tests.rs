//! Scenario tests of the core with simulated time: a base instant plus offsets, never sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::schema::{DepCondition, Dependency, RestartPolicy};
use crate::core::test_support::{spec, unit_plan};
use crate::spec::{ExitStatus, UnitSpec};

const SIGTERM: i32 = 15;

/// Health checks, probes and notices (same helpers as here).
#[path = "health_tests.rs"]
mod health_tests;

/// Refused starts and stops made outside sysg (same helpers as here).
#[path = "admin_tests.rs"]
mod admin_tests;

/// Re-adoption after a supervisor crash (same helpers as here).
#[path = "adopt_tests.rs"]
mod adopt_tests;

/// Rolling and blue-green deployments (same helpers as here).
#[path = "deploy_tests.rs"]
mod deploy_tests;

/// The verdict of a start whose units keep failing during start-up (same helpers as here).
#[path = "start_verdict_tests.rs"]
mod start_verdict_tests;

/// Readiness notification (`READY=1`, `start_timeout`) and the watchdog (same helpers as here).
#[path = "readiness_tests.rs"]
mod readiness_tests;

/// Stop, restart, config reload, adoption, stale events, settling (same helpers as here).
#[path = "lifecycle_tests.rs"]
mod lifecycle_tests;

/// A unit with `on-failure`, 1 s backoff, no cap, depending (Started) on `deps`.
fn unit(name: &str, deps: &[&str]) -> UnitPlan {
    UnitPlan {
        depends_on: deps
            .iter()
            .map(|d| Dependency {
                service: (*d).into(),
                condition: DepCondition::Started,
            })
            .collect(),
        restart: RestartPolicy::OnFailure,
        ..unit_plan(spec(name))
    }
}

fn with_policy(mut p: UnitPlan, policy: RestartPolicy) -> UnitPlan {
    p.restart = policy;
    p
}

fn with_cond(mut p: UnitPlan, cond: DepCondition) -> UnitPlan {
    for d in &mut p.depends_on {
        d.condition = cond;
    }
    p
}

/// The core plus a clock and a pid allocator.
struct Sim {
    core: Core,
    now: Instant,
    next_pid: u32,
}

impl Sim {
    fn new(plan: Vec<UnitPlan>) -> Sim {
        Sim {
            core: Core::new(plan),
            now: Instant::now(),
            next_pid: 100,
        }
    }

    fn send(&mut self, ev: Event) -> Vec<Action> {
        self.core.handle(self.now, ev)
    }

    fn req(&mut self, r: Request) -> Vec<Action> {
        self.send(Event::Request(r))
    }

    fn start_all(&mut self) -> Vec<Action> {
        self.req(Request::Start(None))
    }

    /// Answer a pending start of `name` with a fresh pid.
    fn started(&mut self, name: &str) -> (u32, Vec<Action>) {
        self.next_pid += 1;
        let pid = self.next_pid;
        let acts = self.send(Event::Started {
            unit: name.into(),
            pid,
        });
        (pid, acts)
    }

    fn exit(&mut self, name: &str, status: ExitStatus) -> Vec<Action> {
        let pid = self.pid(name);
        self.send(Event::Exited {
            unit: name.into(),
            pid,
            status,
        })
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.send(Event::Tick)
    }

    fn view(&self, name: &str) -> UnitView {
        match self.core.units().into_iter().find(|v| v.name == name) {
            Some(v) => v,
            None => panic!("no unit {name}"),
        }
    }

    fn state(&self, name: &str) -> StateKind {
        self.view(name).state
    }

    fn pid(&self, name: &str) -> u32 {
        match self.view(name).pid {
            Some(p) => p,
            None => panic!("{name} has no pid"),
        }
    }

    /// Start everything and answer every start until all are up (dependency order).
    fn boot(&mut self) -> Vec<String> {
        let mut order = Vec::new();
        let mut pending = starts(&self.start_all());
        while let Some(name) = pending.first().cloned() {
            pending.remove(0);
            order.push(name.clone());
            let (_, acts) = self.started(&name);
            pending.extend(starts(&acts));
        }
        order
    }
}

fn starts(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Start { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect()
}

fn signals(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Signal { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect()
}

fn kills(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Kill { unit } => Some(unit.clone()),
            _ => None,
        })
        .collect()
}

fn reports(acts: &[Action], kind: ReportKind) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Report {
                kind: k, message, ..
            } if *k == kind => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn persists(acts: &[Action]) -> usize {
    acts.iter().filter(|a| **a == Action::Persist).count()
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ----- start order -----

#[test]
fn nothing_starts_before_a_request() {
    let sim = Sim::new(vec![unit("a", &[])]);
    assert_eq!(sim.state("a"), StateKind::Stopped);
    assert!(sim.core.idle());
    assert!(sim.core.settled(None));
    assert_eq!(sim.core.next_deadline(), None);
}

#[test]
fn chain_starts_in_dependency_order() {
    // Plan order is deliberately reversed.
    let mut sim = Sim::new(vec![
        unit("web", &["api"]),
        unit("api", &["db"]),
        unit("db", &[]),
    ]);
    let acts = sim.start_all();
    assert_eq!(starts(&acts), vec!["db"]);
    assert_eq!(sim.state("api"), StateKind::Waiting);
    assert_eq!(sim.view("api").reason.as_deref(), Some("waiting for db"));
    assert_eq!(sim.state("web"), StateKind::Waiting);
    assert!(!sim.core.settled(None));
    assert!(!sim.core.settled(Some(&["web".into()])));

    let (_, acts) = sim.started("db");
    assert_eq!(starts(&acts), vec!["api"]);
    assert_eq!(persists(&acts), 1);
    assert_eq!(reports(&acts, ReportKind::Started).len(), 1);
    let (_, acts) = sim.started("api");
    assert_eq!(starts(&acts), vec!["web"]);
    let (_, acts) = sim.started("web");
    assert!(starts(&acts).is_empty());
    assert!(sim.core.settled(None));
    assert!(!sim.core.idle());
    // Views come in plan order.
    let names: Vec<_> = sim.core.units().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["web", "api", "db"]);
}

#[test]
fn diamond_starts_bottom_once_and_top_after_both() {
    let mut sim = Sim::new(vec![
        unit("top", &["left", "right"]),
        unit("left", &["base"]),
        unit("right", &["base"]),
        unit("base", &[]),
    ]);
    assert_eq!(starts(&sim.start_all()), vec!["base"]);
    let (_, acts) = sim.started("base");
    assert_eq!(starts(&acts), vec!["left", "right"]);
    let (_, acts) = sim.started("left");
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.view("top").reason.as_deref(), Some("waiting for right"));
    let (_, acts) = sim.started("right");
    assert_eq!(starts(&acts), vec!["top"]);
}

#[test]
fn independent_units_start_together_in_plan_order() {
    let mut sim = Sim::new(vec![unit("b", &[]), unit("a", &[]), unit("c", &["a"])]);
    assert_eq!(starts(&sim.start_all()), vec!["b", "a"]);
}

#[test]
fn start_some_pulls_in_dependencies_only() {
    let mut sim = Sim::new(vec![
        unit("db", &[]),
        unit("api", &["db"]),
        unit("web", &["api"]),
        unit("other", &[]),
    ]);
    let acts = sim.req(Request::Start(Some(vec!["api".into()])));
    assert_eq!(starts(&acts), vec!["db"]);
    let (_, acts) = sim.started("db");
    assert_eq!(starts(&acts), vec!["api"]);
    sim.started("api");
    assert_eq!(sim.state("web"), StateKind::Stopped);
    assert_eq!(sim.state("other"), StateKind::Stopped);
    assert!(sim.core.settled(Some(&["api".into()])));
}

#[test]
fn completed_condition_waits_for_a_clean_exit() {
    let mut sim = Sim::new(vec![
        with_policy(unit("migrate", &[]), RestartPolicy::Never),
        with_cond(unit("app", &["migrate"]), DepCondition::Completed),
    ]);
    assert_eq!(starts(&sim.start_all()), vec!["migrate"]);
    let (_, acts) = sim.started("migrate");
    assert!(
        starts(&acts).is_empty(),
        "a running migration is not done yet"
    );
    assert_eq!(sim.state("app"), StateKind::Waiting);
    assert!(!sim.core.settled(Some(&["app".into()])));
    let acts = sim.exit("migrate", ExitStatus::Code(0));
    assert_eq!(starts(&acts), vec!["app"]);
    assert_eq!(sim.state("migrate"), StateKind::Completed);
}

#[test]
fn completed_condition_fails_on_bad_exit() {
    let mut sim = Sim::new(vec![
        with_policy(unit("migrate", &[]), RestartPolicy::Never),
        with_cond(unit("app", &["migrate"]), DepCondition::Completed),
    ]);
    sim.start_all();
    sim.started("migrate");
    let acts = sim.exit("migrate", ExitStatus::Code(2));
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("app"), StateKind::Blocked);
    assert_eq!(
        sim.view("app").reason.as_deref(),
        Some("dependency migrate failed")
    );
}

#[test]
fn started_condition_accepts_a_completed_dependency() {
    let mut sim = Sim::new(vec![
        with_policy(unit("init", &[]), RestartPolicy::OnFailure),
        unit("app", &["init"]),
    ]);
    sim.start_all();
    let (_, acts) = sim.started("init");
    assert_eq!(starts(&acts), vec!["app"]);
    sim.started("app");
    let acts = sim.exit("init", ExitStatus::Code(0));
    assert_eq!(sim.state("init"), StateKind::Completed);
    assert!(
        signals(&acts).is_empty(),
        "a clean completion does not cascade"
    );
    assert_eq!(sim.state("app"), StateKind::Running);
}

#[test]
fn healthy_condition_without_a_health_check_behaves_like_started() {
    let mut sim = Sim::new(vec![
        unit("db", &[]),
        with_cond(unit("app", &["db"]), DepCondition::Healthy),
    ]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    assert_eq!(starts(&acts), vec!["app"]);
}

#[test]
fn cycle_is_blocked_not_looping() {
    let mut sim = Sim::new(vec![unit("a", &["b"]), unit("b", &["a"]), unit("c", &[])]);
    let acts = sim.start_all();
    assert_eq!(starts(&acts), vec!["c"]);
    assert_eq!(sim.state("a"), StateKind::Blocked);
    assert_eq!(sim.view("a").reason.as_deref(), Some("dependency cycle"));
    assert!(sim.core.settled(None) || sim.state("c") == StateKind::Starting);
}

#[test]
fn unknown_dependency_blocks() {
    let mut sim = Sim::new(vec![unit("a", &["ghost"])]);
    sim.start_all();
    assert_eq!(sim.state("a"), StateKind::Blocked);
    assert_eq!(
        sim.view("a").reason.as_deref(),
        Some("dependency ghost is not configured")
    );
}

// ----- dependency failure and cascade -----

#[test]
fn failed_dependency_keeps_dependents_blocked_and_never_started() {
    let mut sim = Sim::new(vec![
        with_policy(unit("db", &[]), RestartPolicy::Never),
        unit("web", &["db"]),
        unit("edge", &["web"]),
    ]);
    sim.start_all();
    sim.started("db");
    // web started as soon as db ran; let it run, then db dies with 1.
    sim.started("web");
    sim.started("edge");
    let acts = sim.exit("db", ExitStatus::Code(1));
    assert_eq!(sim.state("db"), StateKind::Failed);
    assert_eq!(signals(&acts), vec!["edge"], "dependents go down top-first");
    assert_eq!(sim.state("web"), StateKind::Running);
    let acts = sim.exit("edge", ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec!["web"]);
    let acts = sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("web"), StateKind::Blocked);
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("dependency db failed")
    );
    assert_eq!(sim.state("edge"), StateKind::Blocked);
    assert!(sim.core.idle());
    assert!(sim.core.settled(None));
    // Time passes: nothing ever starts.
    for _ in 0..10 {
        assert!(starts(&sim.advance(secs(3600))).is_empty());
    }
}

#[test]
fn dependency_failing_before_dependents_start_blocks_them() {
    let mut sim = Sim::new(vec![
        with_policy(unit("db", &[]), RestartPolicy::Never),
        unit("web", &["db"]),
    ]);
    sim.start_all();
    let acts = sim.send(Event::StartFailed {
        unit: "db".into(),
        error: "no such user".into(),
    });
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("db"), StateKind::Failed);
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some("start failed: no such user")
    );
    assert_eq!(sim.state("web"), StateKind::Blocked);
    assert_eq!(
        reports(&acts, ReportKind::DependencyFailed),
        vec!["dependency db failed"]
    );
}

#[test]
fn dependents_stopped_on_crash_and_restarted_on_recovery() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.boot();
    let acts = sim.exit("db", ExitStatus::Signal(9));
    assert_eq!(sim.state("db"), StateKind::Backoff);
    assert_eq!(signals(&acts), vec!["web"]);
    assert_eq!(sim.state("web"), StateKind::Stopping);
    assert_eq!(
        reports(&acts, ReportKind::DependencyFailed),
        vec!["stopping: dependency db exited"]
    );
    let acts = sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("web"), StateKind::Blocked);
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("dependency db exited")
    );
    // Backoff of 1 s: db restarts, then web follows once db runs.
    assert_eq!(sim.core.next_deadline(), Some(sim.now + secs(1)));
    let acts = sim.advance(secs(1));
    assert_eq!(starts(&acts), vec!["db"]);
    assert_eq!(sim.state("web"), StateKind::Blocked);
    let (_, acts) = sim.started("db");
    assert_eq!(starts(&acts), vec!["web"]);
    sim.started("web");
    assert_eq!(sim.view("db").restarts, 1);
    assert_eq!(
        sim.view("web").restarts,
        0,
        "a cascade is not a policy restart"
    );
}

#[test]
fn dependency_recovering_before_cascade_finishes_restarts_dependent() {
    let mut sim = Sim::new(vec![
        UnitPlan {
            backoff: Duration::ZERO,
            ..unit("db", &[])
        },
        unit("web", &["db"]),
    ]);
    sim.boot();
    sim.exit("db", ExitStatus::Code(1));
    // Backoff 0: due immediately.
    assert_eq!(sim.core.next_deadline(), Some(sim.now));
    let acts = sim.advance(Duration::ZERO);
    assert_eq!(starts(&acts), vec!["db"]);
    sim.started("db");
    // web is still on its way down; once it exits it comes straight back.
    assert_eq!(sim.state("web"), StateKind::Stopping);
    let acts = sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert_eq!(starts(&acts), vec!["web"]);
}

#[test]
fn cascade_of_a_starting_dependent_waits_for_its_pid() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.start_all();
    sim.started("db");
    assert_eq!(sim.state("web"), StateKind::Starting);
    let acts = sim.exit("db", ExitStatus::Code(1));
    assert!(signals(&acts).is_empty(), "no process to signal yet");
    assert_eq!(sim.state("web"), StateKind::Stopping);
    let (_, acts) = sim.started("web");
    assert_eq!(signals(&acts), vec!["web"]);
    sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert_eq!(sim.state("web"), StateKind::Blocked);
}

// ----- restart policy -----

fn single(policy: RestartPolicy) -> Sim {
    let mut sim = Sim::new(vec![with_policy(unit("a", &[]), policy)]);
    sim.boot();
    sim
}

#[test]
fn policy_never() {
    for (status, want) in [
        (ExitStatus::Code(0), StateKind::Completed),
        (ExitStatus::Code(1), StateKind::Failed),
        (ExitStatus::Signal(9), StateKind::Failed),
        (ExitStatus::Unknown, StateKind::Failed),
    ] {
        let mut sim = single(RestartPolicy::Never);
        let acts = sim.exit("a", status);
        assert_eq!(sim.state("a"), want, "{status:?}");
        assert_eq!(sim.view("a").last_exit, Some(status));
        assert_eq!(sim.view("a").pid, None);
        assert_eq!(persists(&acts), 1);
        assert_eq!(sim.core.next_deadline(), None);
    }
    let mut sim = single(RestartPolicy::Never);
    let acts = sim.exit("a", ExitStatus::Code(1));
    assert_eq!(reports(&acts, ReportKind::Exited), vec!["exited: exit 1"]);
    assert_eq!(reports(&acts, ReportKind::Failed), vec!["exit 1"]);
}

#[test]
fn policy_on_failure() {
    for (status, restart) in [
        (ExitStatus::Code(0), false),
        (ExitStatus::Code(1), true),
        (ExitStatus::Code(255), true),
        (ExitStatus::Signal(9), true),
        (ExitStatus::Unknown, true),
    ] {
        let mut sim = single(RestartPolicy::OnFailure);
        sim.exit("a", status);
        let want = if restart {
            StateKind::Backoff
        } else {
            StateKind::Completed
        };
        assert_eq!(sim.state("a"), want, "{status:?}");
    }
}

#[test]
fn policy_always() {
    for status in [
        ExitStatus::Code(0),
        ExitStatus::Code(1),
        ExitStatus::Signal(15),
    ] {
        let mut sim = single(RestartPolicy::Always);
        let acts = sim.exit("a", status);
        assert_eq!(sim.state("a"), StateKind::Backoff, "{status:?}");
        assert_eq!(sim.view("a").next_restart, Some(sim.now + secs(1)));
        assert_eq!(reports(&acts, ReportKind::Restarting).len(), 1);
        let acts = sim.advance(secs(1));
        assert_eq!(starts(&acts), vec!["a"]);
        assert_eq!(sim.view("a").restarts, 1);
    }
}

#[test]
fn backoff_is_exponential_and_capped() {
    let mut sim = single(RestartPolicy::Always);
    let mut delays = Vec::new();
    for _ in 0..12 {
        sim.advance(secs(5)); // runs 5 s each time: not stable
        sim.exit("a", ExitStatus::Code(1));
        let next = match sim.view("a").next_restart {
            Some(n) => n,
            None => panic!("no restart scheduled"),
        };
        delays.push((next - sim.now).as_secs());
        // Nothing happens a moment before the deadline.
        assert!(starts(&sim.advance(next - sim.now - Duration::from_millis(1))).is_empty());
        assert_eq!(starts(&sim.advance(Duration::from_millis(1))), vec!["a"]);
        sim.started("a");
    }
    assert_eq!(
        delays,
        vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    );
    assert_eq!(sim.view("a").restarts, 12);
}

#[test]
fn consecutive_counter_resets_after_a_stable_run() {
    let mut sim = single(RestartPolicy::OnFailure);
    for want in [1, 2, 4] {
        sim.exit("a", ExitStatus::Code(1));
        assert_eq!(sim.view("a").next_restart, Some(sim.now + secs(want)));
        sim.advance(secs(want));
        sim.started("a");
    }
    // 59 s is not enough...
    sim.advance(secs(59));
    sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.view("a").next_restart, Some(sim.now + secs(8)));
    sim.advance(secs(8));
    sim.started("a");
    // ...60 s is.
    sim.advance(STABLE_RUN);
    sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.view("a").next_restart, Some(sim.now + secs(1)));
    assert_eq!(sim.view("a").restarts, 5);
}

#[test]
fn max_restarts_gives_up() {
    let mut sim = Sim::new(vec![UnitPlan {
        max_restarts: Some(3),
        ..unit("a", &[])
    }]);
    sim.boot();
    for _ in 0..3 {
        sim.exit("a", ExitStatus::Code(1));
        assert_eq!(sim.state("a"), StateKind::Backoff);
        let d = sim.view("a").next_restart.map(|n| n - sim.now);
        sim.advance(d.unwrap_or_default());
        sim.started("a");
    }
    let acts = sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.state("a"), StateKind::Failed);
    assert_eq!(
        sim.view("a").reason.as_deref(),
        Some("gave up after 3 restarts")
    );
    assert_eq!(
        reports(&acts, ReportKind::Failed),
        vec!["gave up after 3 restarts"]
    );
    assert_eq!(sim.core.next_deadline(), None);
    // A new request starts it again with a fresh counter.
    let acts = sim.req(Request::Restart(Some(vec!["a".into()])));
    assert_eq!(starts(&acts), vec!["a"]);
    sim.started("a");
    sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.view("a").next_restart, Some(sim.now + secs(1)));
}

#[test]
fn start_failure_follows_policy_and_counts() {
    let mut sim = Sim::new(vec![UnitPlan {
        max_restarts: Some(1),
        ..unit("a", &[])
    }]);
    sim.start_all();
    let acts = sim.send(Event::StartFailed {
        unit: "a".into(),
        error: "bad user".into(),
    });
    assert_eq!(sim.state("a"), StateKind::Backoff);
    assert_eq!(
        sim.view("a").reason.as_deref(),
        Some("start failed: bad user")
    );
    assert_eq!(reports(&acts, ReportKind::Restarting).len(), 1);
    assert_eq!(starts(&sim.advance(secs(1))), vec!["a"]);
    sim.send(Event::StartFailed {
        unit: "a".into(),
        error: "bad user".into(),
    });
    assert_eq!(sim.state("a"), StateKind::Failed);
    assert_eq!(
        sim.view("a").reason.as_deref(),
        Some("gave up after 1 restart")
    );
}

#[test]
fn zero_backoff_restarts_at_the_same_instant() {
    let mut sim = Sim::new(vec![UnitPlan {
        backoff: Duration::ZERO,
        ..unit("a", &[])
    }]);
    sim.boot();
    sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.state("a"), StateKind::Backoff);
    assert_eq!(sim.core.next_deadline(), Some(sim.now));
    assert_eq!(starts(&sim.advance(Duration::ZERO)), vec!["a"]);
}

#[test]
fn huge_backoff_does_not_panic() {
    let mut sim = Sim::new(vec![UnitPlan {
        backoff: Duration::MAX,
        ..unit("a", &[])
    }]);
    sim.boot();
    sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.state("a"), StateKind::Backoff);
    assert!(starts(&sim.advance(secs(1_000_000))).is_empty());
}

/// `p` with a 200 ms settle window.
fn settling(p: UnitPlan) -> UnitPlan {
    UnitPlan {
        settle: Duration::from_millis(200),
        ..p
    }
}
