//! Scenario tests of health checks in the core, with simulated time: probe scheduling,
//! start_period, retries, unhealthy → restart, gated and cascaded dependents, stale results,
//! and the lifecycle notices hooks and webhooks react to.

use super::*;
use crate::config::schema::{HealthCheck, Probe};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A check with `interval` 5 s, `timeout` 1 s, `retries` 3, no start_period.
fn check() -> HealthCheck {
    HealthCheck {
        probe: Probe::Tcp {
            host: "127.0.0.1".into(),
            port: 5432,
        },
        interval: secs(5),
        timeout: secs(1),
        retries: 3,
        start_period: Duration::ZERO,
        start_interval: secs(5),
    }
}

fn with_check(mut p: UnitPlan, c: HealthCheck) -> UnitPlan {
    p.health = Some(Arc::new(c));
    p
}

/// db (health-checked, on-failure) and web depending on it with `condition: healthy`.
fn db_web() -> Sim {
    Sim::new(vec![
        with_check(unit("db", &[]), check()),
        with_cond(unit("web", &["db"]), DepCondition::Healthy),
    ])
}

fn probes(acts: &[Action]) -> Vec<(String, u64)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Probe { unit, probe, .. } => Some((unit.clone(), *probe)),
            _ => None,
        })
        .collect()
}

/// The one probe issued for `name` in `acts`.
fn probe_of(acts: &[Action], name: &str) -> u64 {
    let p: Vec<u64> = probes(acts)
        .into_iter()
        .filter(|(u, _)| u == name)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(p.len(), 1, "expected one probe of {name} in {acts:?}");
    p[0]
}

fn notices(acts: &[Action]) -> Vec<(String, NoticeKind)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some((n.unit.clone(), n.kind)),
            _ => None,
        })
        .collect()
}

fn kinds_of(acts: &[Action], name: &str) -> Vec<NoticeKind> {
    notices(acts)
        .into_iter()
        .filter(|(u, _)| u == name)
        .map(|(_, k)| k)
        .collect()
}

impl Sim {
    fn result(&mut self, name: &str, probe: u64, ok: bool, detail: &str) -> Vec<Action> {
        self.send(Event::ProbeResult {
            unit: name.into(),
            probe,
            ok,
            detail: detail.into(),
        })
    }

    /// Fail the probe in flight, wait `interval`, and return the next probe id (if issued).
    fn fail_and_wait(&mut self, name: &str, probe: u64, detail: &str) -> (Vec<Action>, u64) {
        let acts = self.result(name, probe, false, detail);
        assert!(probes(&acts).is_empty(), "no probe before the interval");
        let mut all = acts;
        let next = self.advance(secs(5));
        let id = probes(&next).first().map(|p| p.1).unwrap_or(0);
        all.extend(next);
        (all, id)
    }
}

#[test]
fn first_probe_at_start_then_every_interval_after_the_result() {
    let mut sim = db_web();
    sim.start_all();
    let (_, acts) = sim.started("db");
    let p1 = probe_of(&acts, "db");
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    // While a probe is in flight the only timer is its give-up guard.
    assert_eq!(
        sim.core.next_deadline(),
        Some(sim.now + secs(1) + PROBE_GRACE)
    );
    sim.now += MS(300);
    let acts = sim.result("db", p1, true, "connected");
    assert!(probes(&acts).is_empty());
    assert_eq!(sim.view("db").health, Some(Health::Healthy));
    assert_eq!(sim.core.next_deadline(), Some(sim.now + secs(5)));
    // Nothing before the interval, one probe at it.
    assert!(probes(&sim.advance(MS(4999))).is_empty());
    let acts = sim.advance(MS(1));
    assert_eq!(probes(&acts).len(), 1);
}

#[test]
fn dependent_waits_for_a_passing_probe_with_the_reason() {
    let mut sim = db_web();
    let acts = sim.start_all();
    assert_eq!(starts(&acts), vec!["db"]);
    let (_, acts) = sim.started("db");
    assert!(starts(&acts).is_empty(), "web must wait for db's probe");
    let p1 = probe_of(&acts, "db");
    assert_eq!(sim.state("web"), StateKind::Waiting);
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("waiting for db to become healthy")
    );
    assert!(!sim.core.settled(None));
    let (_, p2) = sim.fail_and_wait("db", p1, "connection refused");
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("waiting for db to become healthy (1 probe failed: connection refused)")
    );
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some("1 probe failed: connection refused")
    );
    let (_, p3) = sim.fail_and_wait("db", p2, "connection refused");
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("waiting for db to become healthy (2 probes failed: connection refused)")
    );
    let acts = sim.result("db", p3, true, "connected");
    assert_eq!(starts(&acts), vec!["web"]);
    assert_eq!(kinds_of(&acts, "db"), vec![NoticeKind::Ready]);
    assert_eq!(sim.view("db").reason, None);
    sim.started("web");
    assert!(sim.core.settled(None));
}

#[test]
fn settle_window_alone_does_not_make_a_checked_unit_healthy() {
    let mut sim = Sim::new(vec![
        with_check(unit("db", &[]), check()),
        with_cond(unit("web", &["db"]), DepCondition::Healthy),
        unit("side", &["db"]),
    ]);
    for p in [0, 1, 2] {
        sim.core.units[p].plan.settle = MS(200);
    }
    sim.start_all();
    let (_, acts) = sim.started("db");
    let p1 = probe_of(&acts, "db");
    // `started` dependents go after the settle window; `healthy` ones need the probe.
    let acts = sim.advance(MS(200));
    assert_eq!(starts(&acts), vec!["side"]);
    assert!(!sim.core.settled(Some(&["db".to_string()])));
    let acts = sim.result("db", p1, true, "ok");
    assert_eq!(starts(&acts), vec!["web"]);
    assert!(sim.core.settled(Some(&["db".to_string()])));
}

#[test]
fn a_pass_inside_the_settle_window_waits_for_it() {
    let mut sim = db_web();
    sim.core.units[0].plan.settle = MS(200);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let p1 = probe_of(&acts, "db");
    sim.now += MS(50);
    let acts = sim.result("db", p1, true, "ok");
    assert!(starts(&acts).is_empty(), "still inside db's settle window");
    let acts = sim.advance(MS(150));
    assert_eq!(starts(&acts), vec!["web"]);
}

#[test]
fn start_period_failures_do_not_count() {
    let mut c = check();
    c.start_period = secs(12);
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), c)]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let mut id = probe_of(&acts, "db");
    // t = 0, 5, 10: inside the start period.
    for _ in 0..3 {
        let (acts, next) = sim.fail_and_wait("db", id, "refused");
        assert!(signals(&acts).is_empty());
        id = next;
    }
    // t = 15, 20: counted 1 and 2; t = 25: the third counted failure.
    for _ in 0..2 {
        let (acts, next) = sim.fail_and_wait("db", id, "refused");
        assert!(signals(&acts).is_empty());
        assert_eq!(sim.view("db").health, Some(Health::Starting));
        id = next;
    }
    let acts = sim.result("db", id, false, "refused");
    assert_eq!(signals(&acts), vec!["db"]);
    assert_eq!(sim.view("db").health, Some(Health::Unhealthy));
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some("unhealthy (6 probes failed: refused)")
    );
}

#[test]
fn a_pass_ends_the_start_period() {
    let mut c = check();
    c.start_period = secs(60);
    c.retries = 1;
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), c)]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let p1 = probe_of(&acts, "db");
    sim.result("db", p1, true, "ok");
    let p2 = probe_of(&sim.advance(secs(5)), "db");
    // Healthy once: the next failure counts even though the start period is not over.
    let acts = sim.result("db", p2, false, "HTTP 500");
    assert_eq!(signals(&acts), vec!["db"]);
}

#[test]
fn retries_are_consecutive_and_a_pass_resets_them() {
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), check())]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let mut id = probe_of(&acts, "db");
    for ok in [true, false, false, true, false, false] {
        let acts = sim.result("db", id, ok, "HTTP 503");
        assert!(signals(&acts).is_empty());
        assert_eq!(sim.view("db").health, Some(Health::Healthy));
        id = probe_of(&sim.advance(secs(5)), "db");
    }
    let acts = sim.result("db", id, false, "HTTP 503");
    assert_eq!(signals(&acts), vec!["db"]);
}

#[test]
fn zero_retries_means_one_failure() {
    let mut c = check();
    c.retries = 0;
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), c)]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let acts = sim.result("db", probe_of(&acts, "db"), false, "refused");
    assert_eq!(signals(&acts), vec!["db"]);
}

/// Boot db and web with db healthy; returns db's next probe id.
fn healthy_pair(sim: &mut Sim) -> u64 {
    sim.start_all();
    let (_, acts) = sim.started("db");
    let acts = sim.result("db", probe_of(&acts, "db"), true, "ok");
    assert_eq!(starts(&acts), vec!["web"]);
    sim.started("web");
    probe_of(&sim.advance(secs(5)), "db")
}

/// Fail db's probes until it is declared unhealthy; returns those actions.
fn make_unhealthy(sim: &mut Sim, mut id: u64) -> Vec<Action> {
    for _ in 0..2 {
        id = sim.fail_and_wait("db", id, "HTTP 500").1;
    }
    sim.result("db", id, false, "HTTP 500")
}

#[test]
fn unhealthy_is_stopped_restarted_and_dependents_follow() {
    let mut sim = db_web();
    let id = healthy_pair(&mut sim);
    let db_pid = sim.pid("db");
    let acts = make_unhealthy(&mut sim, id);
    // db is stopped at once (like a crash); web is cascaded.
    assert_eq!(signals(&acts), vec!["db", "web"]);
    assert_eq!(reports(&acts, ReportKind::Unhealthy).len(), 1);
    assert_eq!(kinds_of(&acts, "db"), vec![NoticeKind::Unhealthy]);
    assert_eq!(sim.state("db"), StateKind::Stopping);
    assert_eq!(sim.view("db").health, Some(Health::Unhealthy));
    assert!(!sim.core.settled(None));
    // No more probes for the dying process.
    assert!(probes(&sim.advance(secs(5))).is_empty());

    let acts = sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert_eq!(sim.state("web"), StateKind::Blocked);
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("dependency db unhealthy")
    );
    assert!(starts(&acts).is_empty());
    let acts = sim.exit("db", ExitStatus::Signal(SIGTERM));
    // Through the restart policy, announced as exit then restart (the failure was announced
    // as `unhealthy`).
    assert_eq!(
        kinds_of(&acts, "db"),
        vec![NoticeKind::Exit, NoticeKind::Restart]
    );
    let v = sim.view("db");
    assert_eq!(v.state, StateKind::Backoff);
    assert_eq!(v.restarts, 1);
    assert_eq!(v.health, Some(Health::Unhealthy));
    assert_eq!(
        v.reason.as_deref(),
        Some("unhealthy (3 probes failed: HTTP 500)")
    );
    assert!(sim.core.settled(Some(&["db".to_string()])));

    // After the backoff: a fresh process, probed afresh; web comes back once it passes.
    let acts = sim.advance(secs(1));
    assert_eq!(starts(&acts), vec!["db"]);
    let (pid, acts) = sim.started("db");
    assert_ne!(pid, db_pid);
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    let p = probe_of(&acts, "db");
    assert_eq!(sim.state("web"), StateKind::Blocked);
    let acts = sim.result("db", p, true, "ok");
    assert_eq!(starts(&acts), vec!["web"]);
}

#[test]
fn unhealthy_under_never_fails_and_blocks_dependents() {
    let mut sim = Sim::new(vec![
        with_policy(with_check(unit("db", &[]), check()), RestartPolicy::Never),
        with_cond(unit("web", &["db"]), DepCondition::Healthy),
    ]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let mut id = probe_of(&acts, "db");
    for _ in 0..2 {
        id = sim.fail_and_wait("db", id, "connection refused").1;
    }
    let acts = sim.result("db", id, false, "connection refused");
    assert_eq!(signals(&acts), vec!["db"]);
    assert!(!sim.core.settled(None));
    let acts = sim.exit("db", ExitStatus::Signal(SIGTERM));
    let v = sim.view("db");
    assert_eq!(v.state, StateKind::Failed);
    assert_eq!(
        v.reason.as_deref(),
        Some("unhealthy (3 probes failed: connection refused)")
    );
    assert_eq!(
        reports(&acts, ReportKind::Failed),
        vec!["unhealthy (3 probes failed: connection refused)"]
    );
    assert_eq!(sim.state("web"), StateKind::Blocked);
    assert_eq!(
        sim.view("web").reason.as_deref(),
        Some("dependency db failed")
    );
    assert!(sim.core.settled(None));
    assert_eq!(sim.core.next_deadline(), None);
}

#[test]
fn unhealthy_process_that_ignores_the_signal_is_killed() {
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), check())]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let mut c = check();
    c.retries = 1;
    sim.core.units[0].plan.health = Some(Arc::new(c));
    let acts = sim.result("db", probe_of(&acts, "db"), false, "refused");
    assert_eq!(signals(&acts), vec!["db"]);
    let acts = sim.advance(secs(10));
    assert_eq!(kills(&acts), vec!["db"]);
    let acts = sim.exit("db", ExitStatus::Signal(9));
    assert_eq!(sim.state("db"), StateKind::Backoff);
    assert!(starts(&acts).is_empty());
}

#[test]
fn stale_and_unknown_results_are_ignored() {
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), check())]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let p1 = probe_of(&acts, "db");
    // Unknown unit, unknown id: nothing happens.
    assert!(sim.result("ghost", p1, false, "x").is_empty());
    assert!(sim.result("db", p1 + 100, true, "x").is_empty());
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    // The process dies with the probe in flight; its late result is for an older process.
    sim.exit("db", ExitStatus::Code(1));
    assert!(sim.result("db", p1, true, "ok").is_empty());
    sim.advance(secs(1));
    let (_, acts) = sim.started("db");
    let p2 = probe_of(&acts, "db");
    assert_ne!(p1, p2);
    assert!(sim.result("db", p1, true, "ok").is_empty());
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    // The current one counts, once.
    assert_eq!(
        kinds_of(&sim.result("db", p2, true, "ok"), "db"),
        vec![NoticeKind::Ready]
    );
    assert!(sim.result("db", p2, true, "ok").is_empty());
}

#[test]
fn a_lost_result_counts_as_a_failure_after_timeout_and_grace() {
    let mut c = check();
    c.retries = 1;
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), c)]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let p1 = probe_of(&acts, "db");
    assert!(signals(&sim.advance(secs(1) + PROBE_GRACE - MS(1))).is_empty());
    let acts = sim.advance(MS(1));
    assert_eq!(signals(&acts), vec!["db"]);
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some("unhealthy (1 probe failed: no answer within 1s)")
    );
    // The answer that finally comes is stale.
    assert!(sim.result("db", p1, true, "ok").is_empty());
}

#[test]
fn probes_stop_when_the_unit_stops() {
    let mut sim = db_web();
    let id = healthy_pair(&mut sim);
    let acts = sim.req(Request::Stop(None));
    assert!(probes(&acts).is_empty());
    sim.exit("web", ExitStatus::Signal(SIGTERM));
    // The result of the probe in flight no longer matters.
    assert!(signals(&sim.result("db", id, false, "refused")).is_empty());
    sim.exit("db", ExitStatus::Signal(SIGTERM));
    assert_eq!(sim.state("db"), StateKind::Stopped);
    assert_eq!(sim.view("db").health, None);
    assert_eq!(sim.core.next_deadline(), None);
    assert!(sim.advance(secs(3600)).is_empty());
}

#[test]
fn a_pending_stop_pauses_probing() {
    let mut sim = db_web();
    healthy_pair(&mut sim);
    // db waits for web to exit before its own stop; it is not probed meanwhile.
    sim.req(Request::Stop(Some(vec!["db".into()])));
    assert_eq!(sim.state("db"), StateKind::Running);
    let acts = sim.advance(secs(60));
    assert!(probes(&acts).is_empty());
    // The only timer left was web's kill escalation, which fired.
    assert_eq!(sim.core.next_deadline(), None);
}

#[test]
fn adopted_unit_is_probed_afresh_without_disturbing_dependents() {
    let mut sim = db_web();
    let acts = sim.send(Event::Adopted {
        unit: "db".into(),
        pid: 50,
    });
    let p = probe_of(&acts, "db");
    sim.send(Event::Adopted {
        unit: "web".into(),
        pid: 51,
    });
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    assert_eq!(sim.state("web"), StateKind::Running);
    assert!(!sim.core.settled(None));
    sim.result("db", p, true, "ok");
    assert!(sim.core.settled(None));
    assert_eq!(sim.view("db").health, Some(Health::Healthy));
}

#[test]
fn restart_by_request_probes_the_new_process() {
    let mut sim = db_web();
    let id = healthy_pair(&mut sim);
    let acts = sim.req(Request::Restart(Some(vec!["db".into()])));
    assert_eq!(signals(&acts), vec!["db"]);
    // The old process's probe answers late: ignored.
    assert!(sim.result("db", id, false, "refused").is_empty());
    let acts = sim.exit("db", ExitStatus::Signal(SIGTERM));
    assert_eq!(starts(&acts), vec!["db"]);
    let (_, acts) = sim.started("db");
    probe_of(&acts, "db");
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    // web was left running across the restart.
    assert_eq!(sim.state("web"), StateKind::Running);
}

#[test]
fn reload_adding_a_check_to_a_running_unit_probes_it() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.boot();
    // db waits for web before its stop, so it is still running, and no longer wanted.
    sim.req(Request::Stop(Some(vec!["db".into()])));
    assert_eq!(sim.state("db"), StateKind::Running);
    // A reload swaps the plan of a unit that is not wanted without restarting it.
    let acts = sim.req(Request::Reload(vec![
        with_check(unit("db", &[]), check()),
        unit("web", &["db"]),
    ]));
    assert!(probes(&acts).is_empty(), "no probe while a stop is pending");
    let acts = sim.req(Request::Start(None));
    assert_eq!(sim.state("db"), StateKind::Running);
    probe_of(&acts, "db");
    assert_eq!(sim.view("db").health, Some(Health::Starting));
}

#[test]
fn notices_follow_the_lifecycle() {
    let mut sim = Sim::new(vec![unit("a", &[])]);
    sim.start_all();
    let (_, acts) = sim.started("a");
    assert_eq!(
        kinds_of(&acts, "a"),
        vec![NoticeKind::Start, NoticeKind::Ready]
    );
    let acts = sim.exit("a", ExitStatus::Code(2));
    assert_eq!(
        kinds_of(&acts, "a"),
        vec![NoticeKind::Exit, NoticeKind::Failure, NoticeKind::Restart]
    );
    let exit = acts.iter().find_map(|a| match a {
        Action::Notify(n) if n.kind == NoticeKind::Exit => Some(n.clone()),
        _ => None,
    });
    assert_eq!(exit.and_then(|n| n.exit_status), Some(ExitStatus::Code(2)));
    sim.advance(secs(1));
    sim.started("a");
    let acts = sim.req(Request::Stop(None));
    assert!(kinds_of(&acts, "a").is_empty());
    let acts = sim.exit("a", ExitStatus::Signal(SIGTERM));
    assert_eq!(
        kinds_of(&acts, "a"),
        vec![NoticeKind::Exit, NoticeKind::Stop]
    );
    // A clean exit under on-failure completes: an exit, no failure.
    sim.req(Request::Start(None));
    sim.started("a");
    let acts = sim.exit("a", ExitStatus::Code(0));
    assert_eq!(kinds_of(&acts, "a"), vec![NoticeKind::Exit]);
    // A start failure is a failure without an exit.
    let acts = sim.req(Request::Start(Some(vec!["a".into()])));
    assert_eq!(starts(&acts), vec!["a"]);
    let acts = sim.send(Event::StartFailed {
        unit: "a".into(),
        error: "no such file".into(),
    });
    assert_eq!(
        kinds_of(&acts, "a"),
        vec![NoticeKind::Failure, NoticeKind::Restart]
    );
}

#[test]
fn ready_waits_for_the_settle_window_without_a_check() {
    let mut sim = Sim::new(vec![unit("a", &[])]);
    sim.core.units[0].plan.settle = MS(200);
    sim.start_all();
    let (_, acts) = sim.started("a");
    assert_eq!(kinds_of(&acts, "a"), vec![NoticeKind::Start]);
    let acts = sim.advance(MS(200));
    assert_eq!(kinds_of(&acts, "a"), vec![NoticeKind::Ready]);
    assert_eq!(sim.view("a").health, None);
}

/// Fail every probe of `name` as soon as it is issued, each answer taking `takes`; returns
/// the time from now until the unit is stopped as unhealthy, and how many probes ran.
fn fail_until_unhealthy(
    sim: &mut Sim,
    name: &str,
    mut id: u64,
    takes: Duration,
) -> (Duration, u32) {
    let t0 = sim.now;
    let mut n = 0;
    loop {
        sim.now += takes;
        n += 1;
        let acts = sim.result(name, id, false, "refused");
        if !signals(&acts).is_empty() {
            return (sim.now - t0, n);
        }
        // The next timer may be another (the settle window): run them until a probe goes out.
        id = loop {
            let at = sim.core.next_deadline().expect("a next probe");
            let acts = sim.advance(at.saturating_duration_since(sim.now));
            if let Some((_, id)) = probes(&acts).into_iter().find(|(u, _)| u == name) {
                break id;
            }
        };
    }
}

#[test]
fn before_the_first_pass_failed_probes_are_retried_fast_and_doubling() {
    let mut c = check();
    c.start_interval = MS(1000);
    let mut sim = Sim::new(vec![
        with_check(unit("db", &[]), c),
        with_cond(unit("web", &["db"]), DepCondition::Healthy),
    ]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let mut id = probe_of(&acts, "db");
    // 100, 200, 400, 800 ms, then capped by start_interval (1 s).
    for gap in [100, 200, 400, 800, 1000, 1000] {
        let acts = sim.result("db", id, false, "connection refused");
        assert!(probes(&acts).is_empty());
        assert_eq!(
            sim.core.next_deadline(),
            Some(sim.now + MS(gap)),
            "gap {gap}"
        );
        assert!(probes(&sim.advance(MS(gap - 1))).is_empty());
        id = probe_of(&sim.advance(MS(1)), "db");
    }
    // Fast failures are not counted: 7 probes failed, still starting.
    assert_eq!(sim.view("db").health, Some(Health::Starting));
    // A pass: healthy at once, the dependent starts, then the regular interval.
    let acts = sim.result("db", id, true, "connected");
    assert_eq!(starts(&acts), vec!["web"]);
    assert_eq!(sim.view("db").health, Some(Health::Healthy));
    assert_eq!(sim.core.next_deadline(), Some(sim.now + secs(5)));
}

#[test]
fn fast_retries_never_bring_the_unhealthy_verdict_sooner() {
    // Today's schedule with retries 3, interval 5 s: probes at 0, 5, 10 s; verdict at 10 s.
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), check())]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let (after, n) = fail_until_unhealthy(&mut sim, "db", probe_of(&acts, "db"), Duration::ZERO);
    assert_eq!(after, secs(10));
    assert!(n > 3, "probed fast meanwhile: {n}");
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some(format!("unhealthy ({n} probes failed: refused)").as_str())
    );
}

#[test]
fn fast_retries_keep_start_period_and_slow_probes_on_the_regular_schedule() {
    // start_period 12 s: the slots at 0, 5, 10 s do not count, 15, 20, 25 s do.
    let mut c = check();
    c.start_period = secs(12);
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), c)]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let (after, _) = fail_until_unhealthy(&mut sim, "db", probe_of(&acts, "db"), Duration::ZERO);
    assert_eq!(after, secs(25));
    // Probes taking 900 ms each: today the results come at 0.9, 6.8 and 12.7 s; fast retries
    // in between may only delay the verdict, never advance it.
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), check())]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    let (after, _) = fail_until_unhealthy(&mut sim, "db", probe_of(&acts, "db"), MS(900));
    assert!(after >= MS(12_700), "verdict after {after:?}");
    assert!(after < secs(15), "verdict after {after:?}");
}

#[test]
fn a_unit_healthy_once_is_probed_every_interval_and_a_restart_probes_fast_again() {
    let mut c = check();
    c.retries = 1;
    let mut sim = Sim::new(vec![with_check(unit("db", &[]), c)]);
    sim.start_all();
    let (_, acts) = sim.started("db");
    sim.result("db", probe_of(&acts, "db"), true, "ok");
    let id = probe_of(&sim.advance(secs(5)), "db");
    // Failing after a pass: no fast retries, the failure counts (retries 1: unhealthy).
    let acts = sim.result("db", id, false, "HTTP 500");
    assert_eq!(signals(&acts), vec!["db"]);
    let acts = sim.exit("db", ExitStatus::Signal(SIGTERM));
    let acts = if starts(&acts).is_empty() {
        sim.advance(secs(60))
    } else {
        acts
    };
    assert_eq!(starts(&acts), vec!["db"]);
    let (_, acts) = sim.started("db");
    let id = probe_of(&acts, "db");
    // The new process has not passed yet: its first failure counts (a slot), and it is
    // retried fast; with retries 1 the first failure is the verdict, as before.
    sim.now += MS(10);
    let acts = sim.result("db", id, false, "refused");
    assert_eq!(signals(&acts), vec!["db"]);
}
