//! The process backend through its public API (Linux). Services here print nothing, so no log
//! file is written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use systemg::backend::process::{proc_start_time, ProcessBackend, ProcessOptions};
use systemg::backend::{Backend, BackendError, BackendEvent};
use systemg::spec::{ExitStatus, UnitSpec};

use common::{next_exit, process_backend, wait_until};

const DEADLINE: Duration = Duration::from_secs(10);
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn backend(dir: &Path, options: ProcessOptions) -> (ProcessBackend, Receiver<BackendEvent>) {
    process_backend(dir, options)
}

fn spec(name: &str, argv: &[&str]) -> UnitSpec {
    let project = format!(
        "it{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    UnitSpec {
        stop_timeout: Duration::from_secs(5),
        ..UnitSpec::new(project, name, argv.iter().map(|s| s.to_string()).collect())
    }
}

fn exited(rx: &Receiver<BackendEvent>, unit: &str) -> (u32, ExitStatus) {
    next_exit(rx, unit, DEADLINE)
}

#[test]
fn sigterm_is_reported_as_signal_15() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, rx) = backend(dir.path(), ProcessOptions::default());
    assert_eq!(b.name(), "process");
    let pid = b.start(&spec("sleep", &["sleep", "1000"])).unwrap();
    assert!(proc_start_time(pid).is_some());
    b.signal("sleep", 15).unwrap();
    assert_eq!(exited(&rx, "sleep"), (pid, ExitStatus::Signal(15)));
}

#[test]
fn exit_code_and_missing_program() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, rx) = backend(dir.path(), ProcessOptions::default());
    let pid = b
        .start(&spec("three", &["/bin/sh", "-c", "exit 3"]))
        .unwrap();
    assert_eq!(exited(&rx, "three"), (pid, ExitStatus::Code(3)));
    let e = b
        .start(&spec("missing", &["definitely-not-a-program-xyz"]))
        .unwrap_err();
    assert!(matches!(e, BackendError::Start { .. }), "{e}");
    assert!(b.records().is_empty());
}

fn no_survivor(options: ProcessOptions) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let (mut b, rx) = backend(dir.path(), options);
    let script = format!(
        "sh -c 'setsid sh -c \"sleep 1000 & echo \\$! > {}\" & sleep 1000'",
        pidfile.display()
    );
    b.start(&spec("forker", &["/bin/sh", "-c", &script]))
        .unwrap();
    let mut orphan = 0u32;
    wait_until("the pid file", DEADLINE, || {
        orphan = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        orphan != 0
    });
    assert!(proc_start_time(orphan).is_some());
    b.signal("forker", 15).unwrap();
    exited(&rx, "forker");
    wait_until("the double-forked sleep to be gone", DEADLINE, || {
        proc_start_time(orphan).is_none()
    });
}

#[test]
fn double_fork_leaves_no_survivor() {
    no_survivor(ProcessOptions::default());
}

#[test]
fn double_fork_leaves_no_survivor_without_cgroups() {
    let mut o = ProcessOptions::default();
    o.use_cgroups = false;
    no_survivor(o);
}

#[test]
fn adopt_checks_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let record = {
        let (mut b, _rx) = backend(dir.path(), ProcessOptions::default());
        b.start(&spec("svc", &["sleep", "1000"])).unwrap();
        b.records().remove(0)
    };
    // The first backend is gone; the process still runs. The child is created without
    // waiting for its exec: adoption reads the marker from the environment it exec'd with.
    assert_eq!(proc_start_time(record.pid), Some(record.start_time));
    wait_until("the child to exec sleep", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{}/comm", record.pid))
            .is_ok_and(|c| c.trim() == "sleep")
    });
    let (mut b, rx) = backend(dir.path(), ProcessOptions::default());
    let mut wrong = record.clone();
    wrong.start_time ^= 1;
    assert_eq!(b.adopt(&wrong).unwrap(), None);
    assert_eq!(b.adopt(&record).unwrap(), Some(record.pid));
    assert_eq!(b.records(), vec![record.clone()]);
    b.kill("svc").unwrap();
    let (pid, _) = exited(&rx, "svc");
    assert_eq!(pid, record.pid);
}
