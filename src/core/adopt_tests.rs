//! Scenario tests of re-adoption in the core: every unit a crashed supervisor left running is
//! taken in by one `AdoptedAll` before any dependency is judged, whatever order the runtime
//! found them in.

use super::*;

fn adoption(unit: &str, pid: u32) -> Adoption {
    Adoption {
        unit: unit.into(),
        pid,
        started: None,
    }
}

/// Feed one batch of survivors and check nothing was stopped, killed, started or blamed.
fn adopt_quietly(sim: &mut Sim, found: &[(&str, u32)]) {
    let batch = found.iter().map(|&(u, p)| adoption(u, p)).collect();
    let acts = sim.send(Event::AdoptedAll(batch));
    assert!(signals(&acts).is_empty(), "{found:?}: {acts:?}");
    assert!(kills(&acts).is_empty(), "{found:?}: {acts:?}");
    assert!(starts(&acts).is_empty(), "{found:?}: {acts:?}");
    assert!(
        reports(&acts, ReportKind::DependencyFailed).is_empty(),
        "{found:?}: {acts:?}"
    );
    assert_eq!(persists(&acts), 1);
    for &(unit, pid) in found {
        assert_eq!(sim.state(unit), StateKind::Running, "{unit} in {found:?}");
        assert_eq!(sim.pid(unit), pid, "{unit} in {found:?}");
    }
}

#[test]
fn a_dependent_named_before_its_dependency_keeps_running() {
    // `app` sorts before `zdb`: the runtime used to adopt it first and the core cascaded.
    for found in [[("app", 11), ("zdb", 12)], [("zdb", 12), ("app", 11)]] {
        let mut sim = Sim::new(vec![unit("zdb", &[]), unit("app", &["zdb"])]);
        adopt_quietly(&mut sim, &found);
        // The start request that follows adoption finds everything up.
        let acts = sim.start_all();
        assert!(
            starts(&acts).is_empty() && signals(&acts).is_empty(),
            "{acts:?}"
        );
        assert_eq!((sim.pid("app"), sim.pid("zdb")), (11, 12));
    }
}

#[test]
fn a_three_level_chain_survives_in_every_order() {
    // top → mid → base, with names that sort against the dependency order.
    let plan = || {
        vec![
            unit("a-top", &["m-mid"]),
            unit("m-mid", &["z-base"]),
            unit("z-base", &[]),
        ]
    };
    let all = [("a-top", 1), ("m-mid", 2), ("z-base", 3)];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let found: Vec<(&str, u32)> = order.iter().map(|&k| all[k]).collect();
        let mut sim = Sim::new(plan());
        adopt_quietly(&mut sim, &found);
        let acts = sim.start_all();
        assert!(
            starts(&acts).is_empty() && signals(&acts).is_empty(),
            "{acts:?}"
        );
        // Later events are judged normally: the base crashing takes the chain down.
        let acts = sim.exit("z-base", ExitStatus::Code(1));
        assert_eq!(
            reports(&acts, ReportKind::DependencyFailed).len(),
            2,
            "{acts:?}"
        );
    }
}

#[test]
fn a_missing_link_is_still_judged_once_all_are_in() {
    // The middle of the chain did not survive: the top cannot keep running without it, and
    // the base is left alone. The start request then brings the chain back up in order.
    let mut sim = Sim::new(vec![
        unit("a-top", &["m-mid"]),
        unit("m-mid", &["z-base"]),
        unit("z-base", &[]),
    ]);
    let acts = sim.send(Event::AdoptedAll(vec![
        adoption("a-top", 1),
        adoption("z-base", 3),
    ]));
    assert_eq!(signals(&acts), vec!["a-top"]);
    assert_eq!(
        reports(&acts, ReportKind::DependencyFailed),
        vec!["stopping: dependency m-mid stopped"]
    );
    assert_eq!(sim.state("z-base"), StateKind::Running);
}

#[test]
fn one_adoption_at_a_time_would_cascade() {
    // Why adoption is one event: fed singly in name order, the dependent is judged while its
    // dependency is still unknown and is stopped.
    let mut sim = Sim::new(vec![unit("zdb", &[]), unit("app", &["zdb"])]);
    let acts = sim.send(Event::Adopted {
        unit: "app".into(),
        pid: 11,
    });
    assert_eq!(signals(&acts), vec!["app"]);
}

#[test]
fn an_empty_batch_changes_nothing() {
    let mut sim = Sim::new(vec![unit("zdb", &[]), unit("app", &["zdb"])]);
    let acts = sim.send(Event::AdoptedAll(Vec::new()));
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(sim.state("app"), StateKind::Stopped);
}

#[test]
fn an_adopted_process_keeps_its_uptime_and_says_since_when_it_runs() {
    let mut sim = Sim::new(vec![unit("web", &[])]);
    let wall = chrono::DateTime::parse_from_rfc3339("2026-12-05T18:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let started = sim.now - Duration::from_secs(600);
    let acts = sim.core.handle_at(
        sim.now,
        wall,
        Event::AdoptedAll(vec![Adoption {
            started: Some(started),
            ..adoption("web", 7)
        }]),
    );
    assert_eq!(
        reports(&acts, ReportKind::Started),
        vec!["adopted (running since 2026-12-05 17:50:00 UTC, pid 7)"]
    );
    let v = sim.view("web");
    assert!(v.adopted);
    assert_eq!(v.since, Some(started), "uptime is the process's");
    // A start time in the future (clock skew) is taken as now.
    let mut sim = Sim::new(vec![unit("web", &[])]);
    let later = sim.now + Duration::from_secs(5);
    sim.send(Event::AdoptedAll(vec![Adoption {
        started: Some(later),
        ..adoption("web", 7)
    }]));
    assert_eq!(sim.view("web").since, Some(sim.now));
    // The process the supervisor starts after it is its own, not adopted.
    sim.exit("web", ExitStatus::Code(1));
    sim.advance(Duration::from_secs(60));
    let (_, _) = sim.started("web");
    assert!(!sim.view("web").adopted);
}
