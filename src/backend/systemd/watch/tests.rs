//! The signal thread's state machine (`apply`), fed decoded signals without a bus.

use super::*;
use zbus::zvariant::{ObjectPath, StructureBuilder};

const PATH: &str = "/org/freedesktop/systemd1/unit/sysg_2dp_2dw_2eservice";

fn ov(v: Value<'_>) -> OwnedValue {
    v.try_to_owned().unwrap()
}

fn job(id: u32) -> OwnedValue {
    let path = if id == 0 {
        "/".to_string()
    } else {
        format!("/org/freedesktop/systemd1/job/{id}")
    };
    let s = StructureBuilder::new()
        .add_field(id)
        .add_field(ObjectPath::try_from(path).unwrap())
        .build()
        .unwrap();
    ov(Value::Structure(s))
}

fn unit_props(state: &str, job_id: u32) -> Signal {
    let mut changed = HashMap::new();
    changed.insert("ActiveState".into(), ov(Value::from(state)));
    changed.insert("Job".into(), job(job_id));
    Signal::Props {
        path: PATH.into(),
        iface: "org.freedesktop.systemd1.Unit".into(),
        changed,
    }
}

fn service_props(main: u32, exec_main: u32, code: i32, status: i32) -> Signal {
    let mut changed = HashMap::new();
    changed.insert("MainPID".into(), ov(Value::U32(main)));
    changed.insert("ExecMainPID".into(), ov(Value::U32(exec_main)));
    changed.insert("ExecMainCode".into(), ov(Value::I32(code)));
    changed.insert("ExecMainStatus".into(), ov(Value::I32(status)));
    changed.insert("Result".into(), ov(Value::from("exit-code")));
    Signal::Props {
        path: PATH.into(),
        iface: "org.freedesktop.systemd1.Service".into(),
        changed,
    }
}

fn tracked() -> State {
    let mut st = State::default();
    let mut t = Track::new("w", "sysg-p-w.service");
    t.start_job = Some("/org/freedesktop/systemd1/job/7".into());
    st.tracks.insert(PATH.into(), t);
    st
}

#[test]
fn full_life_reports_one_exit_with_code() {
    let mut st = tracked();
    assert!(apply(&mut st, unit_props("inactive", 7)).is_empty());
    assert!(apply(&mut st, service_props(42, 42, 0, 0)).is_empty());
    assert!(apply(&mut st, unit_props("active", 0)).is_empty());
    assert!(apply(
        &mut st,
        Signal::JobRemoved {
            job: "/org/freedesktop/systemd1/job/7".into(),
            unit: "sysg-p-w.service".into(),
            result: "done".into()
        }
    )
    .is_empty());
    let t = &st.tracks[PATH];
    assert_eq!(t.start_job_result(), Some("done"));
    assert_eq!(t.main_pid, 42);
    st.tracks.get_mut(PATH).unwrap().armed = true;
    st.tracks.get_mut(PATH).unwrap().pid = 42;
    assert!(apply(&mut st, service_props(0, 42, 1, 3)).is_empty());
    let ev = apply(&mut st, unit_props("failed", 0));
    assert_eq!(
        ev,
        vec![BackendEvent::Exited {
            unit: "w".into(),
            pid: 42,
            status: ExitStatus::Code(3)
        }]
    );
    // The removal that follows does not report again.
    assert!(apply(&mut st, Signal::UnitRemoved { path: PATH.into() }).is_empty());
    assert!(st.tracks[PATH].removed);
}

#[test]
fn killed_and_dumped_are_signals() {
    for code in [2, 3] {
        let mut st = tracked();
        let t = st.tracks.get_mut(PATH).unwrap();
        t.armed = true;
        t.seen_active = true;
        t.pid = 5;
        apply(&mut st, service_props(0, 5, code, 9));
        let ev = apply(&mut st, unit_props("inactive", 0));
        assert_eq!(
            ev,
            vec![BackendEvent::Exited {
                unit: "w".into(),
                pid: 5,
                status: ExitStatus::Signal(9)
            }]
        );
    }
}

#[test]
fn end_before_start_returns_is_kept_for_later() {
    let mut st = tracked();
    apply(&mut st, unit_props("active", 0));
    apply(&mut st, service_props(0, 9, 1, 0));
    assert!(apply(&mut st, unit_props("inactive", 0)).is_empty());
    let t = st.tracks.get_mut(PATH).unwrap();
    assert!(t.ended);
    t.armed = true;
    assert_eq!(
        t.take_exit(),
        Some(BackendEvent::Exited {
            unit: "w".into(),
            pid: 9,
            status: ExitStatus::Code(0)
        })
    );
    assert_eq!(t.take_exit(), None);
}

#[test]
fn inactive_with_pending_job_is_not_an_end() {
    let mut st = tracked();
    st.tracks.get_mut(PATH).unwrap().armed = true;
    assert!(apply(&mut st, unit_props("inactive", 7)).is_empty());
    assert!(!st.tracks[PATH].ended);
}

#[test]
fn stale_removal_before_start_job_is_ignored() {
    let mut st = tracked();
    assert!(apply(&mut st, Signal::UnitRemoved { path: PATH.into() }).is_empty());
    assert!(!st.tracks[PATH].removed);
}

#[test]
fn removal_of_a_started_unit_reports_unknown_when_nothing_was_seen() {
    let mut st = tracked();
    apply(
        &mut st,
        Signal::JobRemoved {
            job: "/org/freedesktop/systemd1/job/7".into(),
            unit: "sysg-p-w.service".into(),
            result: "done".into(),
        },
    );
    let t = st.tracks.get_mut(PATH).unwrap();
    t.armed = true;
    t.pid = 11;
    let ev = apply(&mut st, Signal::UnitRemoved { path: PATH.into() });
    assert_eq!(
        ev,
        vec![BackendEvent::Exited {
            unit: "w".into(),
            pid: 11,
            status: ExitStatus::Unknown
        }]
    );
}

#[test]
fn daemon_reload_removing_a_running_unit_is_no_end() {
    let mut st = tracked();
    apply(&mut st, unit_props("active", 0));
    let t = st.tracks.get_mut(PATH).unwrap();
    t.armed = true;
    t.pid = 11;
    t.jobs_done
        .push(("/org/freedesktop/systemd1/job/7".into(), "done".into()));
    assert!(apply(&mut st, Signal::UnitRemoved { path: PATH.into() }).is_empty());
    assert!(!st.tracks[PATH].ended);
}

const SPATH: &str = "/org/freedesktop/systemd1/unit/sysg_2dp_2dj_2eservice";
const TPATH: &str = "/org/freedesktop/systemd1/unit/sysg_2dp_2dj_2etimer";

fn timer_state() -> State {
    let mut st = State::default();
    st.tracks.insert(
        SPATH.into(),
        Track::timer_runs("j", "sysg-p-j.service", 1_000),
    );
    st.tracks
        .insert(TPATH.into(), Track::timer("j", "sysg-p-j.timer", 1_000));
    st
}

/// A timer service's `Service` properties as systemd sends them (all of them each time).
fn run_props(started: u64, ended: u64, pid: u32, code: i32, status: i32) -> Signal {
    let mut changed = HashMap::new();
    changed.insert("ExecMainStartTimestamp".into(), ov(Value::U64(started)));
    changed.insert("ExecMainExitTimestamp".into(), ov(Value::U64(ended)));
    changed.insert("ExecMainPID".into(), ov(Value::U32(pid)));
    changed.insert("ExecMainCode".into(), ov(Value::I32(code)));
    changed.insert("ExecMainStatus".into(), ov(Value::I32(status)));
    changed.insert(
        "MainPID".into(),
        ov(Value::U32(if ended == 0 { pid } else { 0 })),
    );
    Signal::Props {
        path: SPATH.into(),
        iface: "org.freedesktop.systemd1.Service".into(),
        changed,
    }
}

fn trigger(usec: u64) -> Signal {
    let mut changed = HashMap::new();
    changed.insert("LastTriggerUSec".into(), ov(Value::U64(usec)));
    changed.insert("NextElapseUSecRealtime".into(), ov(Value::U64(u64::MAX)));
    Signal::Props {
        path: TPATH.into(),
        iface: "org.freedesktop.systemd1.Timer".into(),
        changed,
    }
}

fn started(pid: u32) -> BackendEvent {
    BackendEvent::Started {
        unit: "j".into(),
        pid,
    }
}

fn exited(pid: u32, status: ExitStatus) -> BackendEvent {
    BackendEvent::Exited {
        unit: "j".into(),
        pid,
        status,
    }
}

#[test]
fn timer_runs_are_told_apart_by_their_start_stamp() {
    let mut st = timer_state();
    // The fresh service, never run yet.
    assert!(apply(&mut st, run_props(0, 0, 0, 0, 0)).is_empty());
    assert_eq!(
        apply(&mut st, trigger(2_000)),
        [BackendEvent::Elapsed { unit: "j".into() }]
    );
    // The same trigger again (the timer's state changed, not its trigger): nothing.
    assert!(apply(&mut st, trigger(2_000)).is_empty());
    assert_eq!(apply(&mut st, run_props(2_010, 0, 40, 0, 0)), [started(40)]);
    // Repeated while running: nothing new.
    assert!(apply(&mut st, run_props(2_010, 0, 40, 0, 0)).is_empty());
    assert!(apply(&mut st, unit_props_at(SPATH, "active", 0)).is_empty());
    assert_eq!(
        apply(&mut st, run_props(2_010, 4_000, 40, 1, 3)),
        [exited(40, ExitStatus::Code(3))]
    );
    assert!(apply(&mut st, run_props(2_010, 4_000, 40, 1, 3)).is_empty());
    // A 5 ms run whose start and end arrive in one signal is still a start and an end.
    assert_eq!(
        apply(&mut st, run_props(6_000, 6_005, 41, 1, 0)),
        [started(41), exited(41, ExitStatus::Code(0))]
    );
    // Killed by a signal.
    assert_eq!(
        apply(&mut st, run_props(7_000, 7_500, 42, 2, 9)),
        [started(42), exited(42, ExitStatus::Signal(9))]
    );
}

#[test]
fn an_earlier_instance_of_the_same_names_is_ignored() {
    let mut st = timer_state();
    assert!(apply(&mut st, run_props(500, 600, 30, 1, 0)).is_empty());
    assert!(apply(&mut st, trigger(700)).is_empty());
}

#[test]
fn a_run_live_when_its_unit_is_unloaded_ends_unknown() {
    let mut st = timer_state();
    apply(&mut st, run_props(2_000, 0, 50, 0, 0));
    assert_eq!(
        apply(&mut st, Signal::UnitRemoved { path: SPATH.into() }),
        [exited(50, ExitStatus::Unknown)]
    );
    assert!(apply(&mut st, Signal::UnitRemoved { path: TPATH.into() }).is_empty());
    assert!(st.tracks[TPATH].removed);
}

fn unit_props_at(path: &str, state: &str, job_id: u32) -> Signal {
    match unit_props(state, job_id) {
        Signal::Props { iface, changed, .. } => Signal::Props {
            path: path.into(),
            iface,
            changed,
        },
        other => other,
    }
}
