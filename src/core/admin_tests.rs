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

/// db ← web ← front, all up; `db` stopped by `systemctl stop`.
fn stopped_outside() -> (Sim, u32) {
    let mut sim = Sim::new(vec![
        with_policy(unit("db", &[]), RestartPolicy::Always),
        with_policy(unit("web", &["db"]), RestartPolicy::Always),
        with_policy(unit("front", &["web"]), RestartPolicy::Always),
    ]);
    sim.boot();
    let db = sim.pid("db");
    let acts = sim.send(Event::StoppedOutside {
        unit: "db".into(),
        pid: db,
        status: ExitStatus::Signal(SIGTERM),
    });
    assert!(starts(&acts).is_empty(), "{acts:?}");
    assert!(
        reports(&acts, ReportKind::Restarting).is_empty(),
        "{acts:?}"
    );
    // Dependents go top down, as on `sysg stop -s db`.
    assert_eq!(signals(&acts), vec!["front"]);
    (sim, db)
}

#[test]
fn a_stop_by_systemctl_stays_stopped_and_dependents_follow() {
    let (mut sim, _) = stopped_outside();
    let v = sim.view("db");
    assert_eq!(v.state, StateKind::Stopped);
    assert_eq!(v.reason.as_deref(), Some("by systemctl"));
    assert_eq!((v.restarts, v.pid), (0, None));
    let front = sim.pid("front");
    let acts = sim.send(Event::Exited {
        unit: "front".into(),
        pid: front,
        status: ExitStatus::Signal(SIGTERM),
    });
    assert_eq!(signals(&acts), vec!["web"]);
    let web = sim.pid("web");
    let acts = sim.send(Event::Exited {
        unit: "web".into(),
        pid: web,
        status: ExitStatus::Signal(SIGTERM),
    });
    assert!(starts(&acts).is_empty(), "{acts:?}");
    for name in ["db", "web", "front"] {
        assert_eq!(sim.state(name), StateKind::Stopped, "{name}");
    }
    // Time passes: nothing comes back on its own.
    assert_eq!(sim.core.next_deadline(), None);
    assert!(starts(&sim.advance(secs(3600))).is_empty());
    // `sysg start` brings the chain back.
    assert_eq!(starts(&sim.start_all()), vec!["db"]);
}

#[test]
fn a_start_by_systemctl_is_followed() {
    let (mut sim, db) = stopped_outside();
    let acts = sim.send(Event::StartedOutside {
        unit: "db".into(),
        pid: db + 500,
    });
    assert!(starts(&acts).is_empty(), "{acts:?}");
    assert_eq!(persists(&acts), 1);
    let v = sim.view("db");
    assert_eq!(
        (v.state, v.pid, v.reason),
        (StateKind::Running, Some(db + 500), None)
    );
    // A crash of the followed process is a crash again: db is wanted, so it restarts.
    let acts = sim.exit("db", ExitStatus::Code(1));
    assert_eq!(reports(&acts, ReportKind::Restarting).len(), 1, "{acts:?}");
}

#[test]
fn an_outside_stop_while_sysg_stops_the_unit_is_an_ordinary_exit() {
    let mut sim = Sim::new(vec![unit("db", &[])]);
    sim.boot();
    let db = sim.pid("db");
    let acts = sim.req(Request::Restart(None));
    assert_eq!(signals(&acts), vec!["db"]);
    let acts = sim.send(Event::StoppedOutside {
        unit: "db".into(),
        pid: db,
        status: ExitStatus::Signal(SIGTERM),
    });
    // The restart sysg asked for goes on.
    assert_eq!(starts(&acts), vec!["db"]);
}

#[test]
fn a_start_outside_never_replaces_a_live_process() {
    let mut sim = Sim::new(vec![unit("db", &[])]);
    sim.boot();
    let db = sim.pid("db");
    sim.send(Event::StartedOutside {
        unit: "db".into(),
        pid: db + 1,
    });
    assert_eq!(sim.pid("db"), db);
}

#[test]
fn a_restart_by_systemctl_is_followed_in_place() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.boot();
    let (db, web) = (sim.pid("db"), sim.pid("web"));
    let acts = sim.send(Event::RestartedOutside {
        unit: "db".into(),
        old: db,
        pid: db + 7,
    });
    assert!(
        starts(&acts).is_empty() && signals(&acts).is_empty(),
        "{acts:?}"
    );
    let v = sim.view("db");
    assert_eq!((v.state, v.pid), (StateKind::Running, Some(db + 7)));
    assert_eq!(sim.pid("web"), web, "dependents are untouched");
    // Another pid than the one the core follows changes nothing.
    sim.send(Event::RestartedOutside {
        unit: "db".into(),
        old: db,
        pid: db + 9,
    });
    assert_eq!(sim.pid("db"), db + 7);
    // A crash of the new process is a crash.
    let acts = sim.exit("db", ExitStatus::Code(1));
    assert_eq!(reports(&acts, ReportKind::Restarting).len(), 1, "{acts:?}");
}
