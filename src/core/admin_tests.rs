//! Scenario tests of what a systemd admin sees the core decide: a start the backend refuses
//! for its configuration fails at once (no retry), and a stop made outside sysg
//! (`systemctl stop`) is a stop by the operator.

use super::*;

#[test]
fn a_refused_start_fails_at_once_whatever_the_policy() {
    let mut sim = Sim::new(vec![
        with_policy(unit("web", &[]), RestartPolicy::Always),
        unit("api", &["web"]),
    ]);
    assert_eq!(starts(&sim.start_all()), vec!["web"]);
    let acts = sim.send(Event::StartRefused {
        unit: "web".into(),
        error: "needs systemd 257 or later".into(),
    });
    assert!(starts(&acts).is_empty(), "{acts:?}");
    assert!(
        reports(&acts, ReportKind::Restarting).is_empty(),
        "{acts:?}"
    );
    assert_eq!(
        reports(&acts, ReportKind::Failed),
        vec!["configuration error: needs systemd 257 or later"]
    );
    let v = sim.view("web");
    assert_eq!(v.state, StateKind::Failed);
    assert_eq!((v.restarts, v.next_restart), (0, None));
    assert_eq!(sim.state("api"), StateKind::Blocked);
    // Nothing is due: no retry will come.
    assert_eq!(sim.core.next_deadline(), None);
    // A start by request tries again (the config may have been fixed by a reload).
    assert_eq!(starts(&sim.start_all()), vec!["web"]);
}

#[test]
fn a_plain_start_failure_still_backs_off() {
    let mut sim = Sim::new(vec![with_policy(unit("web", &[]), RestartPolicy::Always)]);
    sim.start_all();
    let acts = sim.send(Event::StartFailed {
        unit: "web".into(),
        error: "busy".into(),
    });
    assert_eq!(reports(&acts, ReportKind::Restarting).len(), 1, "{acts:?}");
    assert_eq!(sim.state("web"), StateKind::Backoff);
}

#[test]
fn a_refusal_for_a_name_that_is_no_service_is_a_failed_start() {
    // A deployment's candidate or a cron run: handled as StartFailed, never a panic or a
    // change to the service.
    let mut sim = Sim::new(vec![unit("web", &[])]);
    sim.boot();
    let before = sim.core.units();
    sim.send(Event::StartRefused {
        unit: "web~2".into(),
        error: "x".into(),
    });
    assert_eq!(sim.core.units(), before);
}
