//! Scenario tests of stop, restart, config reload, adoption, stale events and the settle
//! window, with simulated time.

use super::*;

// ----- stop -----

#[test]
fn stop_during_backoff_cancels_the_restart() {
    let mut sim = single(RestartPolicy::Always);
    sim.exit("a", ExitStatus::Code(1));
    let acts = sim.req(Request::Stop(Some(vec!["a".into()])));
    assert!(signals(&acts).is_empty());
    assert_eq!(sim.state("a"), StateKind::Stopped);
    assert_eq!(sim.core.next_deadline(), None);
    assert!(starts(&sim.advance(secs(600))).is_empty());
}

#[test]
fn user_stop_never_restarts() {
    for policy in [RestartPolicy::Always, RestartPolicy::OnFailure] {
        let mut sim = single(policy);
        let acts = sim.req(Request::Stop(None));
        assert_eq!(
            acts,
            vec![Action::Signal {
                unit: "a".into(),
                signal: SIGTERM
            }]
        );
        assert_eq!(sim.state("a"), StateKind::Stopping);
        let acts = sim.exit("a", ExitStatus::Signal(SIGTERM));
        assert_eq!(sim.state("a"), StateKind::Stopped);
        assert_eq!(
            reports(&acts, ReportKind::Stopped),
            vec!["stopped (signal SIGTERM)"]
        );
        assert!(starts(&acts).is_empty());
        assert!(starts(&sim.advance(secs(600))).is_empty());
        assert!(sim.core.idle());
    }
}

#[test]
fn stop_all_goes_dependents_first() {
    let mut sim = Sim::new(vec![
        unit("db", &[]),
        unit("cache", &[]),
        unit("api", &["db", "cache"]),
        unit("web", &["api"]),
        unit("worker", &["db"]),
    ]);
    sim.boot();
    let acts = sim.req(Request::Stop(None));
    // Leaves first: web (on api) and worker (on db); cache and db wait.
    assert_eq!(signals(&acts), vec!["web", "worker"]);
    assert_eq!(sim.state("api"), StateKind::Running);
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some("stopping after its dependents")
    );
    let acts = sim.exit("worker", ExitStatus::Code(0));
    assert!(signals(&acts).is_empty(), "db still has api");
    let acts = sim.exit("web", ExitStatus::Code(0));
    assert_eq!(signals(&acts), vec!["api"]);
    let acts = sim.exit("api", ExitStatus::Code(0));
    assert_eq!(signals(&acts), vec!["db", "cache"]);
    sim.exit("db", ExitStatus::Code(0));
    sim.exit("cache", ExitStatus::Code(0));
    assert!(sim.core.idle());
    for v in sim.core.units() {
        assert_eq!(v.state, StateKind::Stopped, "{}", v.name);
    }
}

#[test]
fn stop_some_takes_dependents_down_first() {
    let mut sim = Sim::new(vec![
        unit("db", &[]),
        unit("web", &["db"]),
        unit("other", &[]),
    ]);
    sim.boot();
    let acts = sim.req(Request::Stop(Some(vec!["db".into()])));
    assert_eq!(signals(&acts), vec!["web"]);
    let acts = sim.exit("web", ExitStatus::Code(0));
    assert_eq!(signals(&acts), vec!["db"]);
    sim.exit("db", ExitStatus::Code(0));
    assert_eq!(sim.state("web"), StateKind::Stopped);
    assert_eq!(sim.state("db"), StateKind::Stopped);
    assert_eq!(sim.state("other"), StateKind::Running);
    // Starting db alone does not bring web back: web was stopped too.
    let acts = sim.req(Request::Start(Some(vec!["db".into()])));
    assert_eq!(starts(&acts), vec!["db"]);
    let (_, acts) = sim.started("db");
    assert!(starts(&acts).is_empty());
}

#[test]
fn stop_timeout_escalates_to_kill() {
    let mut sim = single(RestartPolicy::Always);
    sim.req(Request::Stop(None));
    assert_eq!(sim.core.next_deadline(), Some(sim.now + secs(10)));
    assert!(kills(&sim.advance(secs(9))).is_empty());
    let acts = sim.advance(secs(1));
    assert_eq!(kills(&acts), vec!["a"]);
    assert_eq!(sim.state("a"), StateKind::Stopping);
    assert_eq!(sim.core.next_deadline(), None);
    assert!(kills(&sim.advance(secs(100))).is_empty(), "kill only once");
    sim.exit("a", ExitStatus::Signal(9));
    assert_eq!(sim.state("a"), StateKind::Stopped);
}

#[test]
fn stop_of_waiting_or_blocked_units_is_final() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.start_all();
    assert_eq!(sim.state("web"), StateKind::Waiting);
    sim.req(Request::Stop(Some(vec!["web".into()])));
    assert_eq!(sim.state("web"), StateKind::Stopped);
    let (_, acts) = sim.started("db");
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("web"), StateKind::Stopped);
}

#[test]
fn stop_while_starting_signals_once_started() {
    let mut sim = Sim::new(vec![unit("a", &[])]);
    sim.start_all();
    let acts = sim.req(Request::Stop(None));
    assert!(signals(&acts).is_empty());
    assert_eq!(sim.state("a"), StateKind::Stopping);
    let (_, acts) = sim.started("a");
    assert_eq!(signals(&acts), vec!["a"]);
    assert_eq!(persists(&acts), 1);
    sim.exit("a", ExitStatus::Signal(SIGTERM));
    assert_eq!(sim.state("a"), StateKind::Stopped);

    // And a start that fails while a stop is pending just ends stopped.
    sim.start_all();
    sim.req(Request::Stop(None));
    let acts = sim.send(Event::StartFailed {
        unit: "a".into(),
        error: "boom".into(),
    });
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("a"), StateKind::Stopped);
}

#[test]
fn unit_exiting_while_its_stop_waits_for_dependents_ends_stopped() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.boot();
    sim.req(Request::Stop(None));
    let acts = sim.exit("db", ExitStatus::Code(1));
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("db"), StateKind::Stopped);
}

#[test]
fn start_after_stop_request_before_exit_brings_it_back() {
    let mut sim = single(RestartPolicy::Never);
    sim.req(Request::Stop(None));
    sim.start_all();
    let acts = sim.exit("a", ExitStatus::Signal(SIGTERM));
    assert_eq!(starts(&acts), vec!["a"]);
}

// ----- restart -----

#[test]
fn restart_one_unit_leaves_others_untouched() {
    let mut sim = Sim::new(vec![
        unit("db", &[]),
        unit("web", &["db"]),
        unit("other", &[]),
    ]);
    sim.boot();
    let web_pid = sim.pid("web");
    let acts = sim.req(Request::Restart(Some(vec!["db".into()])));
    assert_eq!(signals(&acts), vec!["db"]);
    assert!(!sim.core.settled(Some(&["db".into()])));
    let acts = sim.exit("db", ExitStatus::Signal(SIGTERM));
    assert_eq!(starts(&acts), vec!["db"]);
    assert!(signals(&acts).is_empty());
    let (_, acts) = sim.started("db");
    assert!(starts(&acts).is_empty());
    assert!(signals(&acts).is_empty());
    assert_eq!(sim.pid("web"), web_pid, "dependent left running");
    assert_eq!(sim.state("other"), StateKind::Running);
    assert_eq!(
        sim.view("db").restarts,
        0,
        "a requested restart is not counted"
    );
    assert!(sim.core.settled(None));
}

#[test]
fn restart_of_stopped_or_failed_unit_just_starts_it() {
    let mut sim = single(RestartPolicy::Never);
    sim.exit("a", ExitStatus::Code(1));
    assert_eq!(sim.state("a"), StateKind::Failed);
    let acts = sim.req(Request::Restart(Some(vec!["a".into()])));
    assert_eq!(starts(&acts), vec!["a"]);
    assert_eq!(sim.view("a").reason, None);
}

#[test]
fn restart_pulls_up_stopped_dependencies() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    let acts = sim.req(Request::Restart(Some(vec!["web".into()])));
    assert_eq!(starts(&acts), vec!["db"]);
    let (_, acts) = sim.started("db");
    assert_eq!(starts(&acts), vec!["web"]);
}

// ----- reload -----

#[test]
fn reload_adds_removes_changes_and_keeps() {
    let mut sim = Sim::new(vec![
        unit("keep", &[]),
        unit("change", &[]),
        unit("gone", &[]),
    ]);
    sim.boot();
    let keep_pid = sim.pid("keep");
    let mut changed = unit("change", &[]);
    changed.restart = RestartPolicy::Always;
    let acts = sim.req(Request::Reload(vec![
        unit("new", &["keep"]),
        changed.clone(),
        unit("keep", &[]),
    ]));
    assert_eq!(starts(&acts), vec!["new"]);
    let mut sig = signals(&acts);
    sig.sort();
    assert_eq!(sig, vec!["change", "gone"]);
    // Plan order follows the new plan; the leaving unit is shown until it is gone.
    let names: Vec<_> = sim.core.units().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["new", "change", "keep", "gone"]);
    let acts = sim.exit("gone", ExitStatus::Signal(SIGTERM));
    assert!(starts(&acts).is_empty());
    assert!(sim.core.units().iter().all(|v| v.name != "gone"));
    let acts = sim.exit("change", ExitStatus::Signal(SIGTERM));
    match acts.iter().find(|a| matches!(a, Action::Start { .. })) {
        Some(Action::Start { unit, spec }) => {
            assert_eq!(unit, "change");
            assert_eq!(*spec, changed.spec);
        }
        _ => panic!("changed unit not restarted: {acts:?}"),
    }
    assert_eq!(sim.pid("keep"), keep_pid);
    sim.started("change");
    sim.started("new");
    assert!(sim.core.settled(None));
    // Events for the forgotten unit are ignored.
    assert!(sim
        .send(Event::Exited {
            unit: "gone".into(),
            pid: 1,
            status: ExitStatus::Code(0)
        })
        .is_empty());
}

#[test]
fn reload_change_uses_old_stop_signal_and_new_spec() {
    let mut sim = Sim::new(vec![unit("a", &[])]);
    sim.boot();
    let mut new = unit("a", &[]);
    let mut s = (*new.spec).clone();
    s.stop_signal = 2;
    s.argv = vec!["/bin/false".into()];
    new.spec = Arc::new(s);
    let acts = sim.req(Request::Reload(vec![new.clone()]));
    assert_eq!(
        acts,
        vec![Action::Signal {
            unit: "a".into(),
            signal: SIGTERM
        }]
    );
    let acts = sim.exit("a", ExitStatus::Signal(SIGTERM));
    assert!(acts.contains(&Action::Start {
        unit: "a".into(),
        spec: new.spec.clone()
    }));
}

#[test]
fn reload_does_not_start_user_stopped_units() {
    let mut sim = Sim::new(vec![unit("a", &[]), unit("b", &[])]);
    sim.boot();
    sim.req(Request::Stop(Some(vec!["a".into()])));
    sim.exit("a", ExitStatus::Signal(SIGTERM));
    let mut a2 = unit("a", &[]);
    a2.backoff = secs(7);
    let acts = sim.req(Request::Reload(vec![a2, unit("b", &[])]));
    assert!(acts.is_empty());
    assert_eq!(sim.state("a"), StateKind::Stopped);
}

#[test]
fn reload_removing_a_dependency_chain_stops_top_first() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"]), unit("x", &[])]);
    sim.boot();
    let acts = sim.req(Request::Reload(vec![unit("x", &[])]));
    assert_eq!(signals(&acts), vec!["web"]);
    let acts = sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec!["db"]);
    sim.exit("db", ExitStatus::Signal(SIGTERM));
    let names: Vec<_> = sim.core.units().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["x"]);
}

#[test]
fn reload_readding_a_leaving_unit_keeps_it() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    sim.boot();
    sim.req(Request::Reload(vec![unit("db", &[])]));
    let acts = sim.req(Request::Reload(vec![unit("db", &[]), unit("web", &["db"])]));
    assert!(acts.is_empty());
    let acts = sim.exit("web", ExitStatus::Signal(SIGTERM));
    assert_eq!(starts(&acts), vec!["web"]);
}

#[test]
fn reload_of_a_failed_changed_unit_retries_it() {
    let mut sim = single(RestartPolicy::Never);
    sim.exit("a", ExitStatus::Code(1));
    let fixed = UnitPlan {
        backoff: secs(3),
        ..with_policy(unit("a", &[]), RestartPolicy::Never)
    };
    let acts = sim.req(Request::Reload(vec![fixed]));
    assert_eq!(starts(&acts), vec!["a"]);
}

// ----- adoption and stale events -----

#[test]
fn adopted_units_run_without_start_and_release_dependents() {
    let mut sim = Sim::new(vec![unit("db", &[]), unit("web", &["db"])]);
    let acts = sim.send(Event::Adopted {
        unit: "db".into(),
        pid: 42,
    });
    assert!(starts(&acts).is_empty());
    assert_eq!(persists(&acts), 1);
    assert_eq!(sim.state("db"), StateKind::Running);
    assert_eq!(sim.pid("db"), 42);
    let acts = sim.start_all();
    assert_eq!(starts(&acts), vec!["web"]);
    // A second adoption of a live unit is ignored.
    sim.send(Event::Adopted {
        unit: "db".into(),
        pid: 43,
    });
    assert_eq!(sim.pid("db"), 42);
}

#[test]
fn stale_and_unknown_events_are_ignored() {
    let mut sim = single(RestartPolicy::Always);
    let pid = sim.pid("a");
    let before = sim.core.units();
    for ev in [
        Event::Exited {
            unit: "a".into(),
            pid: pid + 1000,
            status: ExitStatus::Code(1),
        },
        Event::Exited {
            unit: "nope".into(),
            pid,
            status: ExitStatus::Code(1),
        },
        Event::Started {
            unit: "a".into(),
            pid: 7,
        },
        Event::StartFailed {
            unit: "a".into(),
            error: "late".into(),
        },
        Event::Started {
            unit: "nope".into(),
            pid: 7,
        },
        Event::Request(Request::Stop(Some(vec!["nope".into()]))),
        Event::Request(Request::Start(Some(vec!["nope".into()]))),
        Event::Request(Request::Restart(Some(vec!["nope".into()]))),
        Event::Tick,
    ] {
        assert!(sim.send(ev.clone()).is_empty(), "{ev:?}");
    }
    assert_eq!(sim.core.units(), before);
    // An exit of the old pid after a restart is stale too.
    sim.exit("a", ExitStatus::Code(1));
    sim.advance(secs(1));
    sim.started("a");
    let acts = sim.send(Event::Exited {
        unit: "a".into(),
        pid,
        status: ExitStatus::Code(1),
    });
    assert!(acts.is_empty());
    assert_eq!(sim.state("a"), StateKind::Running);
}

#[test]
fn crash_loop_of_a_thousand_iterations_stays_consistent() {
    let mut sim = Sim::new(vec![
        UnitPlan {
            backoff: Duration::from_millis(10),
            ..with_policy(unit("a", &[]), RestartPolicy::Always)
        },
        unit("b", &["a"]),
    ]);
    sim.boot();
    for n in 1..=1000u32 {
        let acts = sim.exit("a", ExitStatus::Code(1));
        assert_eq!(sim.state("a"), StateKind::Backoff);
        assert_eq!(signals(&acts), vec!["b"]);
        sim.exit("b", ExitStatus::Signal(SIGTERM));
        assert_eq!(sim.state("b"), StateKind::Blocked);
        let due = match sim.core.next_deadline() {
            Some(d) => d,
            None => panic!("no deadline at iteration {n}"),
        };
        assert!(due - sim.now <= MAX_BACKOFF);
        sim.now = due;
        assert_eq!(starts(&sim.send(Event::Tick)), vec!["a"]);
        let (_, acts) = sim.started("a");
        assert_eq!(starts(&acts), vec!["b"]);
        sim.started("b");
        assert_eq!(sim.view("a").restarts, n);
        assert_eq!(sim.view("b").restarts, 0);
    }
    assert_eq!(sim.view("a").next_restart, None);
    assert_eq!(sim.core.units().len(), 2);
    assert!(sim.core.settled(None));
}

#[test]
fn waiting_on_a_dependency_in_backoff_after_a_crash_is_not_settled() {
    // db was up, then crashed: its restart may well come up, and web waits for it.
    let mut sim = Sim::new(vec![settling(unit("db", &[])), unit("web", &["db"])]);
    sim.req(Request::Start(Some(vec!["db".into()])));
    sim.started("db");
    sim.advance(Duration::from_millis(200));
    sim.exit("db", ExitStatus::Code(1));
    sim.req(Request::Start(Some(vec!["web".into()])));
    assert_eq!(sim.state("db"), StateKind::Backoff);
    assert_eq!(sim.state("web"), StateKind::Waiting);
    assert!(!sim.core.settled(Some(&["web".into()])));
    assert!(sim.core.settled(Some(&["db".into()])));
}

#[test]
fn explicit_start_reruns_a_completed_unit_but_implicit_does_not() {
    let mut sim = Sim::new(vec![
        with_policy(unit("init", &[]), RestartPolicy::Never),
        unit("app", &["init"]),
    ]);
    sim.boot();
    sim.exit("init", ExitStatus::Code(0));
    sim.req(Request::Stop(Some(vec!["app".into()])));
    sim.exit("app", ExitStatus::Code(0));
    let acts = sim.req(Request::Start(Some(vec!["app".into()])));
    assert_eq!(
        starts(&acts),
        vec!["app"],
        "completed dependency is not re-run"
    );
    let acts = sim.req(Request::Start(Some(vec!["init".into()])));
    assert_eq!(starts(&acts), vec!["init"]);
}

#[test]
fn always_with_clean_exit_at_the_limit_completes() {
    let mut sim = Sim::new(vec![UnitPlan {
        max_restarts: Some(0),
        ..with_policy(unit("a", &[]), RestartPolicy::Always)
    }]);
    sim.boot();
    sim.exit("a", ExitStatus::Code(0));
    assert_eq!(sim.state("a"), StateKind::Completed);
}

#[test]
fn restart_leaves_completed_condition_dependents_running() {
    let mut sim = Sim::new(vec![
        with_policy(unit("job", &[]), RestartPolicy::Never),
        with_cond(unit("app", &["job"]), DepCondition::Completed),
    ]);
    sim.start_all();
    sim.started("job");
    sim.exit("job", ExitStatus::Code(0));
    sim.started("app");
    let acts = sim.req(Request::Restart(Some(vec!["job".into()])));
    assert_eq!(starts(&acts), vec!["job"]);
    sim.started("job");
    assert_eq!(sim.state("app"), StateKind::Running);
    let acts = sim.exit("job", ExitStatus::Code(1));
    // The re-run failed: now the condition is broken and app goes down.
    assert_eq!(signals(&acts), vec!["app"]);
}

#[test]
fn dependents_wait_for_the_settle_window() {
    let mut sim = Sim::new(vec![settling(unit("db", &[])), unit("web", &["db"])]);
    assert_eq!(starts(&sim.start_all()), vec!["db"]);
    let (_, acts) = sim.started("db");
    assert!(starts(&acts).is_empty(), "web must wait: {acts:?}");
    assert!(!sim.core.settled(None), "db is not up yet");
    assert_eq!(
        sim.core.next_deadline(),
        Some(sim.now + Duration::from_millis(200))
    );
    let acts = sim.advance(Duration::from_millis(199));
    assert!(starts(&acts).is_empty());
    let acts = sim.advance(Duration::from_millis(1));
    assert_eq!(starts(&acts), vec!["web"]);
}

#[test]
fn exit_inside_the_settle_window_is_a_failed_start_for_dependents() {
    let mut sim = Sim::new(vec![
        with_policy(settling(unit("db", &[])), RestartPolicy::Never),
        unit("web", &["db"]),
    ]);
    sim.start_all();
    sim.started("db");
    let acts = sim.exit("db", ExitStatus::Code(1));
    assert!(starts(&acts).is_empty(), "{acts:?}");
    assert_eq!(sim.state("db"), StateKind::Failed);
    assert_eq!(sim.state("web"), StateKind::Blocked);
    assert!(sim.view("web").pid.is_none());
    assert!(sim.core.settled(None));
    // Time passing never starts web while db is failed.
    let acts = sim.advance(Duration::from_secs(3600));
    assert!(starts(&acts).is_empty());
}

#[test]
fn a_failed_exec_reported_after_started_is_a_failed_start_with_its_reason() {
    let mut sim = Sim::new(vec![
        with_policy(unit("db", &[]), RestartPolicy::Never),
        unit("web", &["db"]),
        unit("cache", &[]),
    ]);
    sim.start_all();
    let (pid, _) = sim.started("db");
    let (cache, _) = sim.started("cache");
    // Another process's report changes nothing.
    let before = sim.state("db");
    sim.send(Event::ExecFailed {
        unit: "db".into(),
        pid: pid + 1000,
        error: "stale".into(),
    });
    assert_eq!(sim.state("db"), before);
    let acts = sim.send(Event::ExecFailed {
        unit: "db".into(),
        pid,
        error: "db: cannot run `db`: Permission denied (os error 13)".into(),
    });
    assert!(starts(&acts).is_empty());
    assert_eq!(sim.state("db"), StateKind::Failed);
    assert_eq!(
        sim.view("db").reason.as_deref(),
        Some("start failed: db: cannot run `db`: Permission denied (os error 13)")
    );
    // Its dependent (whose start is in flight) is stopped, as after any failed dependency.
    assert_eq!(sim.state("web"), StateKind::Stopping);
    // With a restart policy it is retried like any failed start.
    let acts = sim.send(Event::ExecFailed {
        unit: "cache".into(),
        pid: cache,
        error: "cache: limits.nofile: setrlimit(RLIMIT_NOFILE): Operation not permitted".into(),
    });
    assert_eq!(sim.state("cache"), StateKind::Backoff);
    assert_eq!(
        reports(&acts, ReportKind::Restarting),
        vec![
            "start failed: cache: limits.nofile: setrlimit(RLIMIT_NOFILE): Operation not \
             permitted; restarting in 1s (restart 1)"
        ]
    );
}
