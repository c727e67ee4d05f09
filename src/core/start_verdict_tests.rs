//! Scenario tests of a start's verdict when a unit keeps failing during start-up: with a zero
//! backoff its `Backoff` is never seen between two attempts, yet the start must settle.

use super::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// `on-failure`, zero backoff, no cap, the runtime's 200 ms settle window.
fn crashing(name: &str, deps: &[&str]) -> UnitPlan {
    UnitPlan {
        backoff: Duration::ZERO,
        ..settling(unit(name, deps))
    }
}

fn failing(sim: &Sim) -> Vec<UnitId> {
    sim.core
        .failing_starts(None)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn a_zero_backoff_crash_loop_settles_with_a_verdict() {
    let mut sim = Sim::new(vec![crashing("bad", &[])]);
    sim.start_all();
    sim.started("bad");
    assert!(!sim.core.settled(None), "inside its settle window");
    sim.exit("bad", ExitStatus::Code(1));
    // The restart is due at once; whatever state it is in, the start has its verdict.
    for round in 1..=3u32 {
        assert!(sim.core.settled(None), "round {round}");
        let f = sim.core.failing_starts(None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "bad");
        assert!(
            f[0].1
                .contains(&format!("exit 1; restarting (restart {round})")),
            "{f:?}"
        );
        assert_eq!(starts(&sim.send(Event::Tick)), vec!["bad"]);
        assert_eq!(sim.state("bad"), StateKind::Starting);
        assert!(sim.core.settled(None));
        sim.started("bad");
        assert!(sim.core.settled(None));
        sim.exit("bad", ExitStatus::Code(1));
    }
    // A process that survives its settle window is up: the verdict is gone.
    sim.send(Event::Tick);
    sim.started("bad");
    sim.advance(MS(200));
    assert_eq!(sim.state("bad"), StateKind::Running);
    assert!(failing(&sim).is_empty());
    assert!(sim.core.settled(None));
}

#[test]
fn a_failed_start_counts_and_a_new_request_starts_afresh() {
    let mut sim = Sim::new(vec![crashing("bad", &[])]);
    sim.start_all();
    sim.send(Event::StartFailed {
        unit: "bad".into(),
        error: "no such file".into(),
    });
    assert!(sim.core.settled(None));
    assert!(sim.core.failing_starts(None)[0]
        .1
        .contains("start failed: no such file"));
    // A client's start is a new attempt: it is on its way up again.
    let acts = sim.req(Request::Start(Some(vec!["bad".into()])));
    assert_eq!(starts(&acts), vec!["bad"]);
    assert!(failing(&sim).is_empty());
    assert!(!sim.core.settled(None));
}

#[test]
fn a_crash_after_being_up_is_no_start_failure() {
    let mut sim = Sim::new(vec![crashing("svc", &[])]);
    sim.start_all();
    sim.started("svc");
    sim.advance(MS(200));
    sim.exit("svc", ExitStatus::Code(1));
    assert!(failing(&sim).is_empty());
    sim.send(Event::Tick);
    assert_eq!(sim.state("svc"), StateKind::Starting);
    assert!(!sim.core.settled(None), "its restart may come up");
    // The restart fails early: now it is a failing start.
    sim.started("svc");
    sim.exit("svc", ExitStatus::Code(1));
    assert_eq!(failing(&sim), vec!["svc".to_string()]);
    assert!(sim.core.settled(None));
}

#[test]
fn dependents_of_a_failing_start_have_settled_too() {
    let mut sim = Sim::new(vec![
        crashing("db", &[]),
        unit("api", &["db"]),
        unit("web", &["api"]),
        settling(unit("other", &[])),
    ]);
    sim.start_all();
    sim.started("other");
    sim.started("db");
    sim.exit("db", ExitStatus::Code(1));
    assert_eq!(sim.state("api"), StateKind::Waiting);
    assert_eq!(sim.state("web"), StateKind::Waiting);
    assert!(sim.core.settled(Some(&["web".into()])));
    // Units that do not depend on it still settle on their own.
    assert!(!sim.core.settled(None), "other is inside its settle window");
    sim.advance(MS(200));
    assert!(sim.core.settled(None));
    // Only the failing unit has a start-up failure to report; its dependents say they wait.
    assert_eq!(failing(&sim), vec!["db".to_string()]);
    // Once db is up, its dependents are on their way up again.
    sim.started("db");
    sim.advance(MS(200));
    assert_eq!(sim.state("api"), StateKind::Starting);
    assert!(!sim.core.settled(None));
}
