//! Cron jobs driven by the backend's timers (systemd), their records and their hand-back to
//! the core, and runs whose exec fails: simulated time, as in `tests.rs`.

use super::*;

#[test]
fn timer_driven_job_records_runs_and_skips_from_backend_events() {
    let mut sim = Sim::new(
        vec![],
        vec![timer_job("t", "* * * * *")],
        "2026-05-01T12:00:30Z",
    );
    let acts = sim.send(Event::Request(Request::Start(None)));
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::ArmTimer { unit, calendar, .. }
        if unit == "t" && calendar == "calendar of * * * * *")));
    assert_eq!(sim.state("t"), StateKind::Scheduled);
    assert_eq!(sim.cron("t").driver, Driver::SystemdTimer);
    assert_eq!(sim.core.armed_timers(), ["t"]);
    // Due time: the core starts nothing itself.
    sim.run_to(utc("2026-05-01T12:01:00.200Z"));
    assert!(sim.starts_of("t").is_empty());
    // The timer elapses, systemd starts the run, it ends.
    sim.send(Event::Elapsed { unit: "t".into() });
    sim.send(Event::Started {
        unit: "t".into(),
        pid: 77,
    });
    assert_eq!(sim.state("t"), StateKind::Running);
    sim.at += ms(5);
    sim.send(Event::Exited {
        unit: "t".into(),
        pid: 77,
        status: ExitStatus::Code(0),
    });
    // The next one starts before its elapse is reported, and outlives the next due time.
    sim.run_to(utc("2026-05-01T12:02:00.300Z"));
    sim.send(Event::Started {
        unit: "t".into(),
        pid: 78,
    });
    sim.send(Event::Elapsed { unit: "t".into() });
    // Due while that run is live: skipped, and the timer removed until the run ends (a systemd
    // timer would otherwise fire again as soon as the run ends).
    sim.actions.clear();
    sim.run_to(utc("2026-05-01T12:03:00.300Z"));
    assert!(sim
        .actions
        .contains(&Action::DisarmTimer { unit: "t".into() }));
    let h = sim.cron("t").history;
    let shape: Vec<_> = h.iter().map(|r| (r.scheduled, r.result)).collect();
    assert_eq!(
        shape,
        [
            (Some(utc("2026-05-01T12:01:00Z")), RunResult::Success),
            (Some(utc("2026-05-01T12:02:00Z")), RunResult::Running),
            (Some(utc("2026-05-01T12:03:00Z")), RunResult::Skipped),
        ]
    );
    assert_eq!(h[0].pid, Some(77));
    assert_eq!(sim.count(ReportKind::Skipped), 1);
    // Stopping the job removes the timer and stops the run.
    let acts = sim.send(Event::Request(Request::Stop(None)));
    assert!(acts.contains(&Action::DisarmTimer { unit: "t".into() }));
    assert!(sim.core.armed_timers().is_empty());
    assert!(acts.contains(&Action::Signal {
        unit: "t".into(),
        signal: 15
    }));
    // A run by request goes through the timer's service.
    sim.send(Event::Exited {
        unit: "t".into(),
        pid: 78,
        status: ExitStatus::Signal(15),
    });
    let acts = sim.send(Event::Request(Request::Restart(Some(vec!["t".into()]))));
    assert!(acts.contains(&Action::Trigger { unit: "t".into() }));
    sim.send(Event::Started {
        unit: "t".into(),
        pid: 79,
    });
    assert_eq!(
        sim.cron("t").history.last().unwrap().note.as_deref(),
        Some("run by request")
    );
}

#[test]
fn a_timer_that_cannot_be_created_leaves_the_job_to_the_core() {
    let mut sim = Sim::new(
        vec![],
        vec![timer_job("t", "* * * * *")],
        "2026-05-01T12:00:30Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.send(Event::TimerFailed {
        unit: "t".into(),
        error: "no".into(),
    });
    assert_eq!(sim.cron("t").driver, Driver::Supervisor);
    assert_eq!(sim.count(ReportKind::Warning), 1);
    sim.run_to(utc("2026-05-01T12:01:30Z"));
    assert_eq!(sim.starts_of("t"), [utc("2026-05-01T12:01:00Z")]);
}

#[test]
fn a_timer_job_with_a_live_run_is_armed_after_the_run() {
    let mut sim = Sim::new(
        vec![],
        vec![timer_job("t", "* * * * *")],
        "2026-05-01T12:00:30Z",
    );
    // Found running after a supervisor restart: the timer waits for the run to end, since
    // systemd would refuse a timer whose service is still running.
    sim.send(Event::Adopted {
        unit: "t".into(),
        pid: 50,
    });
    let acts = sim.send(Event::Request(Request::Start(None)));
    assert!(!acts.iter().any(|a| matches!(a, Action::ArmTimer { .. })));
    let acts = sim.send(Event::Exited {
        unit: "t".into(),
        pid: 50,
        status: ExitStatus::Code(0),
    });
    assert!(acts.iter().any(|a| matches!(a, Action::ArmTimer { .. })));
}

#[test]
fn run_records_round_trip_as_json() {
    let r = CronRun {
        scheduled: Some(utc("2026-05-01T12:00:00Z")),
        started: Some(utc("2026-05-01T12:00:00.004Z")),
        ended: None,
        pid: Some(4),
        status: Some(ExitStatus::Code(2)),
        result: RunResult::Failed,
        skipped: false,
        note: None,
    };
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["scheduled"], "2026-05-01T12:00:00.000Z");
    assert_eq!(v["started"], "2026-05-01T12:00:00.004Z");
    assert_eq!(v["ended"], serde_json::Value::Null);
    assert_eq!(v["result"], "failed");
    assert_eq!(v["status"], serde_json::json!({"kind": "code", "value": 2}));
    let back: CronRun = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

#[test]
fn a_timer_job_gets_its_timer_back_after_an_overlap_and_a_late_catch_up_counts_as_the_run() {
    let mut sim = Sim::new(
        vec![],
        vec![timer_job("t", "* * * * *")],
        "2026-05-01T12:00:30Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:00.100Z"));
    sim.send(Event::Started {
        unit: "t".into(),
        pid: 70,
    });
    sim.run_to(utc("2026-05-01T12:02:00.000Z"));
    assert_eq!(
        sim.cron("t").history.last().unwrap().result,
        RunResult::Skipped
    );
    sim.at += ms(10);
    let acts = sim.send(Event::Exited {
        unit: "t".into(),
        pid: 70,
        status: ExitStatus::Code(0),
    });
    assert!(acts.iter().any(|a| matches!(a, Action::ArmTimer { .. })));
    // systemd's catch-up run beat the timer's removal: the skip becomes that run.
    sim.at += ms(10);
    sim.send(Event::Started {
        unit: "t".into(),
        pid: 71,
    });
    let h = sim.cron("t").history;
    let shape: Vec<_> = h.iter().map(|r| (r.scheduled, r.result)).collect();
    assert_eq!(
        shape,
        [
            (Some(utc("2026-05-01T12:01:00Z")), RunResult::Success),
            (Some(utc("2026-05-01T12:02:00Z")), RunResult::Running),
        ]
    );
    assert!(h[1].note.as_deref().unwrap_or("").starts_with("late"));
}

#[test]
fn a_run_by_request_after_an_overlap_gets_its_timer_back_first() {
    let mut sim = Sim::new(
        vec![],
        vec![timer_job("t", "* * * * *")],
        "2026-05-01T12:00:30Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:00.100Z"));
    sim.send(Event::Started {
        unit: "t".into(),
        pid: 70,
    });
    // Overlap: the timer is removed until the run ends.
    sim.run_to(utc("2026-05-01T12:02:00.100Z"));
    assert!(sim
        .actions
        .contains(&Action::DisarmTimer { unit: "t".into() }));
    sim.send(Event::Request(Request::Restart(Some(vec!["t".into()]))));
    let acts = sim.send(Event::Exited {
        unit: "t".into(),
        pid: 70,
        status: ExitStatus::Signal(15),
    });
    let arm = acts
        .iter()
        .position(|a| matches!(a, Action::ArmTimer { .. }));
    let trigger = acts
        .iter()
        .position(|a| *a == Action::Trigger { unit: "t".into() });
    assert!(
        arm.is_some() && trigger.is_some() && arm < trigger,
        "{acts:?}"
    );
}

#[test]
fn a_run_whose_exec_fails_is_recorded_with_the_reason() {
    let mut sim = Sim::new(
        vec![],
        vec![job("bad", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    // The run starts and never ends on its own: the test reports its failed exec.
    sim.behaviour.insert(
        "bad".into(),
        Behaviour {
            takes: None,
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:00.100Z"));
    let pid = *sim.live.get("bad").expect("a live run");
    sim.send(Event::ExecFailed {
        unit: "bad".into(),
        pid,
        error: "bad: cannot run `./job`: Permission denied (os error 13)".into(),
    });
    sim.live.remove("bad");
    let h = sim.cron("bad").history;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].result, RunResult::Failed);
    assert_eq!(h[0].status, Some(ExitStatus::Code(127)));
    assert_eq!(
        h[0].note.as_deref(),
        Some("start failed: bad: cannot run `./job`: Permission denied (os error 13)")
    );
    assert!(sim.reports.iter().any(|(u, k, m)| u == "bad"
        && *k == ReportKind::Failed
        && m == "run could not start: bad: cannot run `./job`: Permission denied (os error 13)"));
    assert_eq!(sim.state("bad"), StateKind::Scheduled);
}
