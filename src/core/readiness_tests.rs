//! Scenario tests of `readiness: notify` and the watchdog with simulated time.

use super::*;
use crate::spec::Readiness;

const S: fn(u64) -> Duration = Duration::from_secs;

/// `unit(name, deps)` with `readiness: notify`, `start_timeout`, and a watchdog.
fn notifying(name: &str, deps: &[&str], start_timeout: u64, watchdog: Option<u64>) -> UnitPlan {
    let mut p = unit(name, deps);
    let spec = UnitSpec {
        readiness: Readiness {
            notify: true,
            start_timeout: S(start_timeout),
            watchdog: watchdog.map(S),
        },
        ..(*p.spec).clone()
    };
    p.spec = Arc::new(spec);
    p
}

fn say(sim: &mut Sim, name: &str, text: &str) -> Vec<Action> {
    let pid = sim.pid(name);
    let message = NotifyMessage::parse(text.as_bytes()).expect("a message");
    sim.send(Event::Notify {
        unit: name.into(),
        pid,
        message,
    })
}

fn ready_notices(acts: &[Action]) -> usize {
    acts.iter()
        .filter(|a| matches!(a, Action::Notify(n) if n.kind == NoticeKind::Ready))
        .count()
}

#[test]
fn dependents_and_the_verdict_wait_for_ready() {
    let mut sim = Sim::new(vec![notifying("db", &[], 30, None), unit("web", &["db"])]);
    assert_eq!(starts(&sim.start_all()), vec!["db"]);
    let (_, acts) = sim.started("db");
    assert!(starts(&acts).is_empty(), "web waits for READY=1: {acts:?}");
    assert_eq!(ready_notices(&acts), 0, "on_ready waits too");
    assert!(!sim.core.settled(None));
    assert!(sim
        .view("web")
        .reason
        .unwrap_or_default()
        .contains("READY=1"));
    // Time passing is not readiness.
    assert!(starts(&sim.advance(S(10))).is_empty());
    let acts = say(&mut sim, "db", "STATUS=loading\n");
    assert!(starts(&acts).is_empty());
    assert_eq!(
        sim.core.notify_view("db").unwrap().status.as_deref(),
        Some("loading")
    );
    let acts = say(&mut sim, "db", "READY=1\nSTATUS=serving");
    assert_eq!(starts(&acts), vec!["web"]);
    assert_eq!(ready_notices(&acts), 1);
    sim.started("web");
    assert!(sim.core.settled(None));
    assert!(sim.core.failing_starts(None).is_empty());
    let v = sim.core.notify_view("db").unwrap();
    assert_eq!(v.status.as_deref(), Some("serving"));
    assert!(!v.awaiting_ready);
    // A unit without `readiness: notify` ignores notifications and has no view.
    assert!(sim.core.notify_view("web").is_none());
}

#[test]
fn no_ready_within_start_timeout_fails_the_start_and_the_policy_applies() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, None), unit("web", &["db"])]);
    sim.start_all();
    sim.started("db");
    assert!(sim.advance(S(4)).is_empty() || signals(&sim.advance(S(0))).is_empty());
    let acts = sim.advance(S(1));
    assert_eq!(signals(&acts), vec!["db"], "stopped at the deadline");
    assert!(reports(&acts, ReportKind::Failed)[0].contains("readiness"));
    assert!(!sim.core.settled(None), "the stop is under way");
    let acts = sim.exit("db", ExitStatus::Signal(15));
    // on-failure: a restart, and the start has its verdict (a failed start).
    assert!(
        !reports(&acts, ReportKind::Restarting).is_empty(),
        "{acts:?}"
    );
    assert!(sim.core.settled(None));
    let f = sim.core.failing_starts(None);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].1.contains("READY=1"), "{f:?}");
    assert!(starts(&sim.advance(S(1))).contains(&"db".to_string()));
}

#[test]
fn never_policy_makes_the_timed_out_unit_failed_with_a_readiness_reason() {
    let mut p = notifying("db", &[], 2, None);
    p.restart = RestartPolicy::Never;
    let mut sim = Sim::new(vec![p]);
    sim.start_all();
    sim.started("db");
    sim.advance(S(2));
    sim.exit("db", ExitStatus::Signal(15));
    assert_eq!(sim.state("db"), StateKind::Failed);
    assert!(sim.view("db").reason.unwrap().contains("readiness"));
}

#[test]
fn extend_timeout_moves_the_start_deadline() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, None)]);
    sim.start_all();
    sim.started("db");
    sim.advance(S(4));
    say(&mut sim, "db", "EXTEND_TIMEOUT_USEC=10000000");
    assert!(signals(&sim.advance(S(5))).is_empty(), "extended to t=14s");
    assert_eq!(signals(&sim.advance(S(5))), vec!["db"]);
}

#[test]
fn the_watchdog_aborts_a_silent_service_and_counts_as_a_failure() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, Some(3))]);
    sim.start_all();
    sim.started("db");
    say(&mut sim, "db", "READY=1");
    for _ in 0..5 {
        assert!(signals(&sim.advance(S(2))).is_empty());
        say(&mut sim, "db", "WATCHDOG=1");
    }
    let acts = sim.advance(S(3));
    let abort: Vec<i32> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Signal { signal, .. } => Some(*signal),
            _ => None,
        })
        .collect();
    assert_eq!(abort, vec![libc::SIGABRT]);
    assert!(reports(&acts, ReportKind::Failed)[0].starts_with("watchdog"));
    // SIGKILL after stop_timeout (10 s by default) if it does not die.
    assert_eq!(kills(&sim.advance(S(10))), vec!["db"]);
    let acts = sim.exit("db", ExitStatus::Signal(9));
    assert!(!reports(&acts, ReportKind::Restarting).is_empty());
    assert!(sim.view("db").reason.unwrap().starts_with("watchdog"));
    // A crash after being up: no failed start.
    assert!(sim.core.failing_starts(None).is_empty());
}

#[test]
fn watchdog_trigger_and_usec_are_honoured() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, Some(3))]);
    sim.start_all();
    sim.started("db");
    say(&mut sim, "db", "READY=1\nWATCHDOG_USEC=20000000");
    assert!(signals(&sim.advance(S(15))).is_empty(), "interval now 20 s");
    assert_eq!(signals(&sim.advance(S(5))), vec!["db"]);

    let mut sim = Sim::new(vec![notifying("db", &[], 5, Some(3))]);
    sim.start_all();
    sim.started("db");
    say(&mut sim, "db", "READY=1");
    let acts = say(&mut sim, "db", "WATCHDOG=trigger");
    assert_eq!(signals(&acts), vec!["db"]);
    // WATCHDOG_USEC=0 turns it off.
    let mut sim = Sim::new(vec![notifying("db", &[], 5, Some(3))]);
    sim.start_all();
    sim.started("db");
    say(&mut sim, "db", "READY=1\nWATCHDOG_USEC=0");
    assert!(signals(&sim.advance(S(100))).is_empty());
    assert!(sim.core.next_deadline().is_none());
}

#[test]
fn reloading_then_ready_is_a_reload_not_a_restart() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, None), unit("web", &["db"])]);
    sim.start_all();
    sim.started("db");
    say(&mut sim, "db", "READY=1");
    sim.started("web");
    let pid = sim.pid("db");
    let acts = say(&mut sim, "db", "RELOADING=1");
    assert!(sim.core.notify_view("db").unwrap().reloading);
    assert!(signals(&acts).is_empty() && starts(&acts).is_empty());
    let acts = say(&mut sim, "db", "READY=1\nSTOPPING=1\nMAINPID=4242");
    assert!(signals(&acts).is_empty() && starts(&acts).is_empty());
    let v = sim.core.notify_view("db").unwrap();
    assert!(!v.reloading && v.stopping);
    assert_eq!(v.main_pid, Some(4242));
    assert_eq!(sim.pid("db"), pid);
    assert_eq!(sim.state("web"), StateKind::Running);
}

#[test]
fn a_readiness_exit_before_ready_is_a_failed_start() {
    let mut sim = Sim::new(vec![notifying("db", &[], 30, None)]);
    sim.start_all();
    sim.started("db");
    sim.advance(S(1));
    sim.exit("db", ExitStatus::Code(3));
    assert_eq!(sim.core.failing_starts(None).len(), 1);
}

#[test]
fn an_adopted_notify_service_counts_as_ready() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, Some(3)), unit("web", &["db"])]);
    sim.send(Event::Adopted {
        unit: "db".into(),
        pid: 77,
    });
    let acts = sim.start_all();
    assert_eq!(starts(&acts), vec!["web"]);
    // Its watchdog runs from the adoption.
    assert_eq!(signals(&sim.advance(S(3))), vec!["db"]);
}

#[test]
fn a_reload_waits_for_ready_and_times_out_without_it() {
    let mut sim = Sim::new(vec![notifying("db", &[], 5, None)]);
    sim.start_all();
    sim.started("db");
    say(&mut sim, "db", "READY=1");
    assert_eq!(sim.core.reload_outcome("db"), Some((0, None)));
    sim.send(Event::ReloadSent { unit: "db".into() });
    say(&mut sim, "db", "RELOADING=1");
    assert_eq!(
        sim.core.reload_outcome("db"),
        Some((0, None)),
        "not over yet"
    );
    say(&mut sim, "db", "READY=1");
    assert_eq!(sim.core.reload_outcome("db"), Some((1, None)));
    // A service that never answers: the reload fails at start_timeout, the process stays.
    let pid = sim.pid("db");
    sim.send(Event::ReloadSent { unit: "db".into() });
    assert!(signals(&sim.advance(S(5))).is_empty());
    let (n, err) = sim.core.reload_outcome("db").unwrap();
    assert_eq!(n, 2);
    assert!(err.unwrap().contains("READY=1"));
    assert_eq!(sim.pid("db"), pid);
    // An exit during a reload ends it too.
    sim.send(Event::ReloadSent { unit: "db".into() });
    sim.exit("db", ExitStatus::Code(1));
    let (n, err) = sim.core.reload_outcome("db").unwrap();
    assert_eq!(n, 3);
    assert!(err.unwrap().contains("exited"));
}

#[test]
fn the_watchdog_starts_at_ready_not_at_exec() {
    let mut sim = Sim::new(vec![notifying("db", &[], 30, Some(2))]);
    sim.start_all();
    sim.started("db");
    assert!(
        signals(&sim.advance(S(10))).is_empty(),
        "slow start-up, no watchdog yet"
    );
    say(&mut sim, "db", "READY=1");
    assert!(signals(&sim.advance(S(1))).is_empty());
    assert_eq!(signals(&sim.advance(S(1))), vec!["db"]);
}

#[test]
fn a_rolling_candidate_is_promoted_only_after_its_ready() {
    use std::collections::HashMap;
    let mut sim = Sim::new(vec![notifying("web", &[], 5, None)]);
    let plan = DeployPlan {
        pre_start: None,
        health: None,
        grace: Duration::ZERO,
        blue_green: None,
    };
    sim.core
        .set_deployments(HashMap::from([("web".to_string(), Arc::new(plan))]));
    sim.start_all();
    sim.started("web");
    say(&mut sim, "web", "READY=1");
    let old = sim.pid("web");
    let acts = sim.req(Request::Restart(Some(vec!["web".into()])));
    assert_eq!(starts(&acts), vec!["web~1"]);
    let (cand, _) = sim.started("web~1");
    // Long past the settle window: no READY=1, no promotion.
    sim.advance(S(3));
    assert_eq!(sim.pid("web"), old);
    let acts = sim.send(Event::Notify {
        unit: "web~1".into(),
        pid: cand,
        message: NotifyMessage::ready(),
    });
    assert!(
        reports(&acts, ReportKind::Deployed).is_empty(),
        "settle first"
    );
    let acts = sim.advance(MIN_DEPLOY_SETTLE);
    assert_eq!(reports(&acts, ReportKind::Deployed).len(), 1, "{acts:?}");
    assert_eq!(sim.pid("web"), cand);
    // The promoted instance speaks for its unit.
    sim.send(Event::Notify {
        unit: "web~1".into(),
        pid: cand,
        message: NotifyMessage::parse(b"STATUS=new").unwrap(),
    });
    assert_eq!(
        sim.core.notify_view("web").unwrap().status.as_deref(),
        Some("new")
    );

    // A candidate that never sends READY=1 fails the deployment; the old one stays.
    let acts = sim.req(Request::Restart(Some(vec!["web".into()])));
    let key = starts(&acts)[0].clone();
    sim.started(&key);
    let acts = sim.advance(S(5));
    assert_eq!(
        reports(&acts, ReportKind::DeployFailed).len(),
        1,
        "{acts:?}"
    );
    assert_eq!(sim.pid("web"), cand);
}

#[test]
fn ready_ends_the_settle_window_at_once() {
    let mut p = notifying("db", &[], 30, None);
    p.settle = Duration::from_millis(200);
    let mut sim = Sim::new(vec![p, unit("web", &["db"])]);
    sim.start_all();
    sim.started("db");
    sim.advance(Duration::from_millis(50));
    let acts = say(&mut sim, "db", "READY=1");
    assert_eq!(
        starts(&acts),
        vec!["web"],
        "no wait for the rest of the settle window"
    );
}
