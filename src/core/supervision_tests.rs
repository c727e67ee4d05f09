//! Tests of `Supervision`: events routed by key shape, client waits answered on the event that
//! meets their goal (and not before), refusals, ad-hoc units forgotten once down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::spawn::{Owner, SpawnAction, SpawnLimits, StopHow};
use super::test_support::{spec, unit_plan};
use super::{
    Action, Answer, ClientEvent, Core, Dependency, Event, Input, NotifyMessage, StateKind,
    Supervision, UnitPlan,
};
use crate::config::schema::{DepCondition, TerminationPolicy};
use crate::spec::{ExitStatus, UnitSpec};

const STOP: StopHow = StopHow {
    signal: 15,
    timeout: Duration::from_secs(5),
};

fn plan(name: &str) -> UnitPlan {
    unit_plan(spec(name))
}

fn sup(plans: Vec<UnitPlan>) -> Supervision {
    Supervision::new(Core::new(plans))
}

/// Feed `input` at `now`.
fn feed(s: &mut Supervision, now: Instant, input: impl Into<Input>) -> Vec<Action> {
    s.handle(now, Utc::now(), input.into())
}

/// The replies among `actions`.
fn replies(actions: &[Action]) -> Vec<(u64, Answer)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reply { client, answer } => Some((*client, answer.clone())),
            _ => None,
        })
        .collect()
}

/// The end of a turn: the answers, then (after they went out) the forgetting.
fn end_turn(s: &mut Supervision, now: Instant) -> Vec<(u64, Answer)> {
    let answers = replies(&feed(s, now, ClientEvent::TurnEnded));
    feed(s, now, ClientEvent::Answered);
    answers
}

fn started(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect()
}

fn ok_report() -> Answer {
    Answer::Report {
        problems: Vec::new(),
        changes: None,
    }
}

/// `web` with a dynamic spawn tree and a running child `web/c` (pid 900).
fn with_child(termination: TerminationPolicy) -> (Supervision, Instant) {
    let now = Instant::now();
    let mut s = sup(vec![plan("web")]);
    s.spawn_mut().configure(
        "web",
        Some(SpawnLimits {
            children: None,
            depth: None,
            descendants: None,
            rate_per_sec: 100,
            termination,
        }),
    );
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Start {
            client: 1,
            services: None,
        },
    );
    assert_eq!(started(&acts), vec!["web"]);
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "web".into(),
            pid: 100,
        },
    );
    assert_eq!(end_turn(&mut s, now), vec![(1, ok_report())]);
    let key = s
        .spawn_mut()
        .admit(now, &Owner::Service("web".into()), "c", None, STOP)
        .unwrap();
    assert_eq!(key, "web/c");
    let acts = feed(
        &mut s,
        now,
        Input::Child(super::ChildEvent::Started {
            key: key.clone(),
            pid: 900,
        }),
    );
    assert_eq!(acts, vec![Action::Persist]);
    (s, now)
}

#[test]
fn a_start_is_answered_on_the_event_that_settles_it_not_before() {
    let now = Instant::now();
    let mut s = sup(vec![plan("a")]);
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Start {
            client: 7,
            services: Some(vec!["a".into()]),
        },
    );
    assert_eq!(started(&acts), vec!["a"]);
    assert!(replies(&acts).is_empty());
    // Starting: the turn ends without an answer.
    assert!(end_turn(&mut s, now).is_empty());
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "a".into(),
            pid: 10,
        },
    );
    assert_eq!(end_turn(&mut s, now), vec![(7, ok_report())]);
    // Answered once.
    assert!(end_turn(&mut s, now).is_empty());
}

#[test]
fn a_failed_start_is_answered_with_the_problem() {
    let now = Instant::now();
    let mut s = sup(vec![plan("a")]);
    feed(
        &mut s,
        now,
        ClientEvent::Start {
            client: 1,
            services: None,
        },
    );
    feed(
        &mut s,
        now,
        Event::StartFailed {
            unit: "a".into(),
            error: "no such file".into(),
        },
    );
    let r = end_turn(&mut s, now);
    let [(1, Answer::Report { problems, .. })] = r.as_slice() else {
        panic!("{r:?}");
    };
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("a "), "{problems:?}");
    assert!(problems[0].contains("no such file"), "{problems:?}");
}

#[test]
fn unknown_services_are_refused_at_once_and_nothing_starts() {
    let now = Instant::now();
    let mut s = sup(vec![plan("a")]);
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Restart {
            client: 3,
            services: Some(vec!["nope".into()]),
        },
    );
    assert_eq!(
        replies(&acts),
        vec![(
            3,
            Answer::Refused("unknown service `nope`; services are: a".into())
        )]
    );
    assert!(started(&acts).is_empty());
    assert!(end_turn(&mut s, now).is_empty());
}

#[test]
fn a_stop_is_answered_once_the_process_is_gone() {
    let now = Instant::now();
    let mut s = sup(vec![plan("a")]);
    feed(
        &mut s,
        now,
        ClientEvent::Start {
            client: 1,
            services: None,
        },
    );
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "a".into(),
            pid: 10,
        },
    );
    end_turn(&mut s, now);
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Stop {
            client: 2,
            services: Some(vec!["a".into()]),
        },
    );
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Signal { unit, .. } if unit == "a"
    )));
    assert!(end_turn(&mut s, now).is_empty());
    feed(
        &mut s,
        now,
        Event::Exited {
            unit: "a".into(),
            pid: 10,
            status: ExitStatus::Signal(15),
        },
    );
    assert_eq!(end_turn(&mut s, now), vec![(2, ok_report())]);
}

#[test]
fn a_child_exit_goes_to_the_spawn_tree_not_to_the_units() {
    let (mut s, now) = with_child(TerminationPolicy::Cascade);
    let acts = feed(
        &mut s,
        now,
        Event::Exited {
            unit: "web/c".into(),
            pid: 900,
            status: ExitStatus::Code(0),
        },
    );
    assert!(s.spawn().child("web/c").is_none());
    // Only the tree's report and a state write: no unit report, no exit for `inspect`.
    assert!(acts.iter().all(|a| matches!(
        a,
        Action::Child(SpawnAction::Report { unit, .. }) if unit == "web/c"
    ) || *a == Action::Persist));
    assert!(acts.contains(&Action::Persist));
    assert_eq!(s.core().unit("web").unwrap().state, StateKind::Running);
    assert!(s.core().unit("web/c").is_none());
}

#[test]
fn a_service_exit_goes_to_the_units_and_ends_its_cascading_children() {
    let (mut s, now) = with_child(TerminationPolicy::Cascade);
    let later = now + Duration::from_secs(3);
    let acts = feed(
        &mut s,
        later,
        Event::Exited {
            unit: "web".into(),
            pid: 100,
            status: ExitStatus::Code(1),
        },
    );
    assert!(acts.contains(&Action::Child(SpawnAction::Signal {
        unit: "web/c".into(),
        signal: 15,
    })));
    assert!(acts.contains(&Action::RecordExit {
        unit: "web".into(),
        pid: 100,
        status: ExitStatus::Code(1),
        ran: Some(3.0),
    }));
    assert_eq!(s.core().unit("web").unwrap().state, StateKind::Failed);
}

#[test]
fn orphaned_children_outlive_their_service() {
    let (mut s, now) = with_child(TerminationPolicy::Orphan);
    let acts = feed(
        &mut s,
        now,
        Event::Exited {
            unit: "web".into(),
            pid: 100,
            status: ExitStatus::Code(1),
        },
    );
    assert!(!acts.iter().any(|a| matches!(a, Action::Child(_))));
    assert!(s.spawn().child("web/c").is_some());
}

#[test]
fn a_stop_of_a_child_is_answered_when_it_is_gone() {
    let (mut s, now) = with_child(TerminationPolicy::Cascade);
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Stop {
            client: 4,
            services: Some(vec!["web/c".into()]),
        },
    );
    assert!(acts.contains(&Action::Child(SpawnAction::Signal {
        unit: "web/c".into(),
        signal: 15,
    })));
    assert!(replies(&acts).is_empty());
    assert!(end_turn(&mut s, now).is_empty());
    // The child's exit answers the client; the service runs on.
    feed(
        &mut s,
        now,
        Event::Exited {
            unit: "web/c".into(),
            pid: 900,
            status: ExitStatus::Signal(15),
        },
    );
    assert_eq!(end_turn(&mut s, now), vec![(4, ok_report())]);
    assert_eq!(s.core().unit("web").unwrap().state, StateKind::Running);
}

#[test]
fn a_stop_of_a_child_that_does_not_run_is_refused() {
    let (mut s, now) = with_child(TerminationPolicy::Cascade);
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Stop {
            client: 5,
            services: Some(vec!["web/zz".into()]),
        },
    );
    assert_eq!(
        replies(&acts),
        vec![(
            5,
            Answer::Refused("no spawned child `web/zz` is running; children of web: web/c".into())
        )]
    );
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Stop {
            client: 6,
            services: Some(vec!["web/c".into(), "web".into()]),
        },
    );
    assert_eq!(
        replies(&acts),
        vec![(
            6,
            Answer::Refused("`web` is a service, not a spawned child; stop it on its own".into())
        )]
    );
}

fn adhoc(name: &str) -> UnitPlan {
    unit_plan(Arc::new(UnitSpec::new(
        "adhoc",
        name,
        vec!["/bin/true".into()],
    )))
}

#[test]
fn a_waited_run_is_answered_when_it_finished_and_then_forgotten() {
    let now = Instant::now();
    let mut s = sup(Vec::new());
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Run {
            client: 9,
            plan: adhoc("job"),
            wait: true,
        },
    );
    assert_eq!(started(&acts), vec!["job"]);
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "job".into(),
            pid: 50,
        },
    );
    // Running is not the end of a waited run.
    assert!(end_turn(&mut s, now).is_empty());
    feed(
        &mut s,
        now,
        Event::Exited {
            unit: "job".into(),
            pid: 50,
            status: ExitStatus::Code(3),
        },
    );
    let acts = feed(&mut s, now, ClientEvent::TurnEnded);
    // The answer is its end, whatever it was; the unit is still there for its report.
    assert_eq!(
        replies(&acts),
        vec![(
            9,
            Answer::Run {
                unit: "job".into(),
                problem: None
            }
        )]
    );
    assert!(s.core().unit("job").is_some());
    // Once the answer went out, nothing of it is left.
    let acts = feed(&mut s, now, ClientEvent::Answered);
    assert!(acts.contains(&Action::Persist));
    assert!(s.core().unit("job").is_none());
}

#[test]
fn a_run_without_wait_is_answered_once_running_and_kept() {
    let now = Instant::now();
    let mut s = sup(Vec::new());
    feed(
        &mut s,
        now,
        ClientEvent::Run {
            client: 1,
            plan: adhoc("srv"),
            wait: false,
        },
    );
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "srv".into(),
            pid: 60,
        },
    );
    assert_eq!(
        end_turn(&mut s, now),
        vec![(
            1,
            Answer::Run {
                unit: "srv".into(),
                problem: None
            }
        )]
    );
    assert!(s.core().unit("srv").is_some());
    // A reload of the config keeps it.
    feed(
        &mut s,
        now,
        ClientEvent::Reload {
            client: None,
            units: vec![plan("a")],
            jobs: Vec::new(),
            deployments: Default::default(),
            changes: None,
        },
    );
    assert_eq!(s.core().unit("srv").unwrap().state, StateKind::Running);
    // A stop by name forgets it once it is down, not before.
    feed(
        &mut s,
        now,
        ClientEvent::Stop {
            client: 2,
            services: Some(vec!["srv".into()]),
        },
    );
    assert!(end_turn(&mut s, now).is_empty());
    assert!(s.core().unit("srv").is_some());
    feed(
        &mut s,
        now,
        Event::Exited {
            unit: "srv".into(),
            pid: 60,
            status: ExitStatus::Signal(15),
        },
    );
    assert_eq!(end_turn(&mut s, now), vec![(2, ok_report())]);
    assert!(s.core().unit("srv").is_none());
}

#[test]
fn a_reload_answers_with_its_changes_once_settled() {
    let now = Instant::now();
    let mut s = sup(vec![plan("a")]);
    feed(
        &mut s,
        now,
        ClientEvent::Start {
            client: 1,
            services: None,
        },
    );
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "a".into(),
            pid: 1,
        },
    );
    end_turn(&mut s, now);
    let changes = serde_json::json!({"added": ["b"]});
    let mut b = plan("b");
    b.depends_on = vec![Dependency {
        service: "a".into(),
        condition: DepCondition::Started,
    }];
    let acts = feed(
        &mut s,
        now,
        ClientEvent::Reload {
            client: Some(3),
            units: vec![plan("a"), b],
            jobs: Vec::new(),
            deployments: Default::default(),
            changes: Some(changes.clone()),
        },
    );
    // The unchanged `a` keeps running; the added `b` starts.
    assert_eq!(started(&acts), vec!["b"]);
    assert!(end_turn(&mut s, now).is_empty());
    feed(
        &mut s,
        now,
        Event::Started {
            unit: "b".into(),
            pid: 2,
        },
    );
    assert_eq!(
        end_turn(&mut s, now),
        vec![(
            3,
            Answer::Report {
                problems: Vec::new(),
                changes: Some(changes)
            }
        )]
    );
}

#[test]
fn a_readiness_wait_asks_for_nothing() {
    let now = Instant::now();
    let mut s = sup(vec![plan("a")]);
    let acts = feed(
        &mut s,
        now,
        ClientEvent::AwaitSettled {
            client: 0,
            services: None,
        },
    );
    assert!(acts.is_empty());
    // Nothing was asked for: stopped units are settled.
    assert_eq!(end_turn(&mut s, now).len(), 1);
}

#[test]
fn shutdown_stops_children_and_units_and_is_done_when_all_are_gone() {
    let (mut s, now) = with_child(TerminationPolicy::Orphan);
    let acts = feed(&mut s, now, ClientEvent::Shutdown);
    assert!(acts.contains(&Action::Child(SpawnAction::Signal {
        unit: "web/c".into(),
        signal: 15,
    })));
    assert!(s.shutting_down() && !s.done());
    feed(
        &mut s,
        now,
        Event::Exited {
            unit: "web".into(),
            pid: 100,
            status: ExitStatus::Signal(15),
        },
    );
    assert!(!s.done());
    feed(
        &mut s,
        now,
        Event::Exited {
            unit: "web/c".into(),
            pid: 900,
            status: ExitStatus::Signal(15),
        },
    );
    assert!(s.done());
    // A second shutdown does nothing more.
    assert!(feed(&mut s, now, ClientEvent::Shutdown).is_empty());
}

#[test]
fn a_tick_reaches_the_spawn_tree_when_a_child_is_due() {
    let (mut s, now) = with_child(TerminationPolicy::Cascade);
    feed(
        &mut s,
        now,
        ClientEvent::Stop {
            client: 1,
            services: Some(vec!["web/c".into()]),
        },
    );
    let due = s.next_deadline().unwrap();
    assert!(due <= now + STOP.timeout);
    let acts = feed(&mut s, due, Event::Tick);
    assert!(acts.contains(&Action::Child(SpawnAction::Kill {
        unit: "web/c".into()
    })));
}

/// `db` (`readiness: notify`, start_timeout 5 s) and `web`, both started and `db` ready.
fn reloadable(now: Instant) -> Supervision {
    let mut db = (*spec("db")).clone();
    db.readiness.notify = true;
    db.readiness.start_timeout = Duration::from_secs(5);
    let mut s = sup(vec![unit_plan(Arc::new(db)), plan("web")]);
    feed(
        &mut s,
        now,
        ClientEvent::Start {
            client: 1,
            services: None,
        },
    );
    for (unit, pid) in [("db", 100), ("web", 200)] {
        feed(
            &mut s,
            now,
            Event::Started {
                unit: unit.into(),
                pid,
            },
        );
    }
    say(&mut s, now, "READY=1");
    assert_eq!(end_turn(&mut s, now), vec![(1, ok_report())]);
    s
}

/// `db` (pid 100) sends `text` on its notify socket.
fn say(s: &mut Supervision, now: Instant, text: &str) {
    let message = NotifyMessage::parse(text.as_bytes()).expect("a message");
    feed(
        s,
        now,
        Event::Notify {
            unit: "db".into(),
            pid: 100,
            message,
        },
    );
}

#[test]
fn a_service_reload_is_answered_once_notify_services_and_commands_are_done() {
    let now = Instant::now();
    let mut s = reloadable(now);
    let services = serde_json::json!([{"name": "db"}, {"name": "web"}]);
    feed(
        &mut s,
        now,
        ClientEvent::ReloadServices {
            client: 2,
            signalled: vec!["db".into()],
            commands: vec!["web".into()],
            services: services.clone(),
            problems: Vec::new(),
        },
    );
    assert!(end_turn(&mut s, now).is_empty());
    say(&mut s, now, "RELOADING=1");
    assert!(end_turn(&mut s, now).is_empty(), "db is still reloading");
    say(&mut s, now, "READY=1");
    assert!(end_turn(&mut s, now).is_empty(), "web's command still runs");
    feed(
        &mut s,
        now,
        ClientEvent::ReloadCommandDone {
            client: 2,
            service: "web".into(),
            error: Some("failed: exit status 1".into()),
        },
    );
    assert_eq!(
        end_turn(&mut s, now),
        vec![(
            2,
            Answer::Reloaded {
                services,
                problems: vec!["`web`: reload command failed: exit status 1".into()],
            }
        )]
    );
}

#[test]
fn a_notify_service_that_never_ends_its_reload_fails_it_at_start_timeout() {
    let now = Instant::now();
    let mut s = reloadable(now);
    feed(
        &mut s,
        now,
        ClientEvent::ReloadServices {
            client: 3,
            // `web` is no notify service: nothing to wait for.
            signalled: vec!["db".into(), "web".into()],
            commands: Vec::new(),
            services: serde_json::json!([]),
            problems: Vec::new(),
        },
    );
    assert!(end_turn(&mut s, now).is_empty());
    let due = s.next_deadline().expect("the reload's deadline");
    assert_eq!(due, now + Duration::from_secs(5));
    let acts = feed(&mut s, due, Event::Tick);
    assert!(!acts.iter().any(|a| matches!(a, Action::Signal { .. })));
    match end_turn(&mut s, due).as_slice() {
        [(3, Answer::Reloaded { problems, .. })] => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with("`db`: ") && problems[0].contains("READY=1"));
        }
        other => panic!("{other:?}"),
    }
}
