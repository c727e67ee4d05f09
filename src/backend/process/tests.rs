//! Tests of the process backend against real processes (Linux; run as root for cgroups).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::output::LineOut;
use super::*;
use crate::backend::BackendEvent;
use crate::spec::ExitStatus;

const DEADLINE: Duration = Duration::from_secs(10);

type Line = (String, Kind, Vec<u8>);

struct ChanOut {
    unit: String,
    kind: Kind,
    tx: Arc<Mutex<Sender<Line>>>,
}

impl LineOut for ChanOut {
    fn write_line(&mut self, _ts: SystemTime, line: &[u8]) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send((self.unit.clone(), self.kind, line.to_vec()));
        }
    }
}

struct Harness {
    backend: ProcessBackend,
    events: Receiver<BackendEvent>,
    lines: Receiver<Line>,
    dir: tempfile::TempDir,
    project: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn project() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn harness_in(dir: tempfile::TempDir, project: String, use_cgroups: bool) -> Harness {
    let (etx, events) = mpsc::channel();
    let etx = Mutex::new(etx);
    let (ltx, lines) = mpsc::channel();
    let ltx = Arc::new(Mutex::new(ltx));
    let opener: LogOpener = Box::new(move |_dir: &Path, unit: &str, kind, _policy| {
        Some(Box::new(ChanOut {
            unit: unit.to_string(),
            kind,
            tx: ltx.clone(),
        }) as Box<dyn LineOut>)
    });
    let paths = BackendPaths {
        log_dir: dir.path().join("logs"),
        run_dir: dir.path().join("run"),
        fifo_dir: dir.path().join("run"),
    };
    let backend = ProcessBackend::with_options(
        paths,
        None,
        Box::new(move |ev| {
            if let Ok(tx) = etx.lock() {
                let _ = tx.send(ev);
            }
        }),
        ProcessOptions {
            use_cgroups,
            log_opener: Some(opener),
            project: Some(project.clone()),
        },
    )
    .unwrap();
    Harness {
        backend,
        events,
        lines,
        dir,
        project,
    }
}

fn harness(use_cgroups: bool) -> Harness {
    harness_in(tempfile::tempdir().unwrap(), project(), use_cgroups)
}

fn spec(project: &str, name: &str, argv: &[&str]) -> UnitSpec {
    UnitSpec {
        stop_timeout: Duration::from_secs(5),
        ..UnitSpec::new(project, name, argv.iter().map(|s| s.to_string()).collect())
    }
}

impl Harness {
    fn spec(&self, name: &str, argv: &[&str]) -> UnitSpec {
        spec(&self.project, name, argv)
    }

    fn sh(&self, name: &str, script: &str) -> UnitSpec {
        self.spec(name, &["/bin/sh", "-c", script])
    }

    fn exited(&self, unit: &str) -> (u32, ExitStatus) {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(BackendEvent::Exited {
                    unit: u,
                    pid,
                    status,
                }) if u == unit => return (pid, status),
                Ok(_) => continue,
                Err(e) => panic!("no exit of {unit}: {e}"),
            }
        }
    }

    /// The next event about `unit`.
    fn next_event(&self, unit: &str) -> BackendEvent {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => match &ev {
                    BackendEvent::Exited { unit: u, .. }
                    | BackendEvent::ExecFailed { unit: u, .. }
                    | BackendEvent::MainExited { unit: u, .. }
                    | BackendEvent::Started { unit: u, .. }
                    | BackendEvent::StoppedOutside { unit: u, .. }
                    | BackendEvent::StartedOutside { unit: u, .. }
                    | BackendEvent::RestartedOutside { unit: u, .. }
                    | BackendEvent::Notify { unit: u, .. }
                    | BackendEvent::Elapsed { unit: u } => {
                        if u == unit {
                            return ev;
                        }
                    }
                },
                Err(e) => panic!("no event of {unit}: {e}"),
            }
        }
    }

    /// Start `spec`, which must fail: the error, whether `start` returned it or the child
    /// reported it (`ExecFailed`) after `start` had returned its pid.
    fn start_failure(&mut self, spec: &UnitSpec) -> String {
        let pid = match self.backend.start(spec) {
            Err(e) => return e.to_string(),
            Ok(pid) => pid,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(BackendEvent::ExecFailed {
                    unit,
                    pid: p,
                    error,
                }) if unit == spec.name => {
                    assert_eq!(p, pid);
                    return error;
                }
                Ok(BackendEvent::Exited { unit, status, .. }) if unit == spec.name => {
                    panic!("{unit} ran and exited ({status}) instead of failing to start")
                }
                Ok(_) => continue,
                Err(e) => panic!("no failure of {}: {e}", spec.name),
            }
        }
    }

    /// Lines of `unit` until `want` have arrived.
    fn lines_until(&self, unit: &str, want: usize) -> Vec<(Kind, String)> {
        let end = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        while got.len() < want {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((u, kind, line)) if u == unit => {
                    got.push((kind, String::from_utf8_lossy(&line).into_owned()))
                }
                Ok(_) => continue,
                Err(e) => panic!("only {got:?} of {want} lines from {unit}: {e}"),
            }
        }
        got
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn alive(pid: u32) -> bool {
    procfs::stat(pid).is_some_and(|s| s.state != b'Z')
}

/// Wait until `cond` holds; a failed wait panics with `what`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_pid(path: &Path) -> u32 {
    let mut pid = 0;
    wait_until("the pid file", || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

#[test]
fn sleep_runs_and_sigterm_is_reported() {
    for cg in [true, false] {
        let mut h = harness(cg);
        let pid = h
            .backend
            .start(&h.spec("sleeper", &["sleep", "1000"]))
            .unwrap();
        assert!(alive(pid));
        let rec = h.backend.records();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].pid, pid);
        assert_eq!(Some(rec[0].start_time), proc_start_time(pid));
        h.backend.signal("sleeper", libc::SIGTERM).unwrap();
        assert_eq!(
            h.exited("sleeper"),
            (pid, ExitStatus::Signal(libc::SIGTERM))
        );
        wait_until("the pid to be reaped", || proc_start_time(pid).is_none());
        assert!(h.backend.records().is_empty());
        assert!(matches!(
            h.backend.signal("sleeper", libc::SIGTERM),
            Err(BackendError::NotRunning { .. })
        ));
    }
}

#[test]
fn uses_a_cgroup_when_possible() {
    let mut h = harness(true);
    let Some(base) = h.backend.cgroup_base().map(Path::to_path_buf) else {
        eprintln!("skipped: no cgroup2 hierarchy");
        return;
    };
    h.backend.start(&h.spec("cg", &["sleep", "1000"])).unwrap();
    let rec = h.backend.records().remove(0);
    if rec.extra["kill_mode"] != "cgroup" {
        eprintln!("skipped: {} is not writable", base.display());
        h.backend.kill("cg").unwrap();
        h.exited("cg");
        return;
    }
    let dir = PathBuf::from(rec.extra["cgroup"].as_str().unwrap());
    assert_eq!(cgroup::procs(&dir), vec![rec.pid]);
    h.backend.kill("cg").unwrap();
    assert_eq!(h.exited("cg").1, ExitStatus::Signal(libc::SIGKILL));
    wait_until("the cgroup to be removed", || !dir.exists());
    // With the last unit's cgroup, the project instance's group went too.
    let group = dir.parent().unwrap().to_path_buf();
    assert!(!group.exists(), "{} left behind", group.display());

    // Whatever is left in it (here a stray empty cgroup) goes when the supervisor leaves.
    h.backend.start(&h.spec("cg", &["sleep", "1000"])).unwrap();
    std::fs::create_dir(group.join("stray")).unwrap();
    h.backend.kill("cg").unwrap();
    h.exited("cg");
    wait_until("the unit's cgroup to be removed", || !dir.exists());
    assert!(group.exists());
    h.backend.release();
    assert!(!group.exists(), "{} left behind", group.display());
}

#[test]
fn a_unit_starts_in_a_cgroup_that_was_killed_before() {
    let mut h = harness(true);
    h.backend
        .start(&h.spec("again", &["sleep", "1000"]))
        .unwrap();
    let rec = h.backend.records().remove(0);
    if rec.extra["kill_mode"] != "cgroup" {
        eprintln!("skipped: no writable cgroup");
        h.backend.kill("again").unwrap();
        h.exited("again");
        return;
    }
    let dir = PathBuf::from(rec.extra["cgroup"].as_str().unwrap());
    h.backend.kill("again").unwrap();
    h.exited("again");
    wait_until("the cgroup to be removed", || !dir.exists());
    // The next instance finds its cgroup still there, and killed (as when a restart comes
    // while the old processes are still dying).
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup.kill"), "1").unwrap();
    let pid = h
        .backend
        .start(&h.spec("again", &["sleep", "1000"]))
        .unwrap();
    wait_until("sleep to run", || comm(pid) == "sleep");
    assert!(alive(pid), "the new instance was killed");
    assert_eq!(cgroup::procs(&dir), vec![pid]);
    h.backend.kill("again").unwrap();
    assert_eq!(h.exited("again"), (pid, ExitStatus::Signal(libc::SIGKILL)));
}

#[test]
fn exit_code_is_propagated() {
    let mut h = harness(true);
    let pid = h.backend.start(&h.sh("three", "exit 3")).unwrap();
    assert_eq!(h.exited("three"), (pid, ExitStatus::Code(3)));
    let pid = h.backend.start(&h.sh("three", "exit 0")).unwrap();
    assert_eq!(h.exited("three"), (pid, ExitStatus::Code(0)));
}

#[test]
fn start_errors() {
    let mut h = harness(true);
    let e = h
        .backend
        .start(&h.spec("missing", &["/nonexistent/program-xyz"]))
        .unwrap_err();
    assert!(matches!(e, BackendError::Start { .. }), "{e}");
    assert!(e.to_string().contains("program-xyz"), "{e}");
    let e = h
        .backend
        .start(&h.spec("missing", &["no-such-program-in-path-xyz"]))
        .unwrap_err();
    assert!(matches!(e, BackendError::Start { .. }), "{e}");

    let mut s = h.spec("badcwd", &["true"]);
    s.cwd = Some(h.path("no-such-dir"));
    let e = h.backend.start(&s).unwrap_err();
    assert!(e.to_string().contains("working directory"), "{e}");

    let mut s = h.spec("user", &["true"]);
    s.user = Some("no-such-user-xyz".into());
    let e = h.backend.start(&s).unwrap_err();
    assert!(e.to_string().contains("no such user"), "{e}");

    let mut s = h.spec("group", &["true"]);
    s.supplementary_groups = vec!["no-such-group-xyz".into()];
    let e = h.backend.start(&s).unwrap_err();
    assert!(e.to_string().contains("no such group"), "{e}");

    let mut s = h.spec("cap", &["true"]);
    s.capabilities = Some(vec!["CAP_NOT_A_CAP".into()]);
    let e = h.backend.start(&s).unwrap_err();
    assert!(e.to_string().contains("unknown capability"), "{e}");

    // Errors name the field, whether found before the fork or by the child.
    let mut s = h.spec("nofile", &["true"]);
    s.limits.nofile = Some(crate::config::schema::Size::Unlimited);
    let e = h.backend.start(&s).unwrap_err();
    assert!(e.to_string().contains("limits.nofile"), "{e}");
    assert!(e.to_string().contains("fs.nr_open"), "{e}");

    let mut s = h.spec("affinity", &["true"]);
    // A CPU number the set can hold but no machine here has: the kernel refuses the mask.
    s.limits.cpu_affinity = Some(vec![1000]);
    let e = h.start_failure(&s);
    assert!(
        e.starts_with("affinity: limits.cpu_affinity: sched_setaffinity: "),
        "{e}"
    );

    // Found by the child itself, after `start` returned: named all the same.
    let script = h.path("script-without-shebang");
    std::fs::write(&script, "true\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let e = h.start_failure(&h.spec("noexec", &[script.to_str().unwrap()]));
    assert!(
        e.starts_with("noexec: cannot run `") && e.contains("Exec format error"),
        "{e}"
    );
    let e = h.start_failure(&h.spec("notexec", &["/etc/hostname"]));
    assert!(e.contains("cannot run `/etc/hostname`"), "{e}");
    let e = h.start_failure(&h.spec("dir", &["/tmp"]));
    assert!(e.contains("cannot run `/tmp`"), "{e}");

    let e = h.backend.start(&h.spec("../x", &["true"])).unwrap_err();
    assert!(matches!(e, BackendError::Start { .. }), "{e}");

    // Nothing was left behind by the failures (FIFOs of a child that failed after `start`
    // stay, as any exited unit's do, for its next start).
    assert!(h.backend.records().is_empty());
    let run = h.dir.path().join("run");
    let left: Vec<_> = std::fs::read_dir(&run)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !["affinity.", "noexec.", "notexec.", "dir."]
                        .iter()
                        .any(|p| n.starts_with(p))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn starting_twice_is_refused() {
    let mut h = harness(true);
    h.backend
        .start(&h.spec("twice", &["sleep", "1000"]))
        .unwrap();
    let e = h
        .backend
        .start(&h.spec("twice", &["sleep", "1000"]))
        .unwrap_err();
    assert!(e.to_string().contains("already running"), "{e}");
    h.backend.kill("twice").unwrap();
    h.exited("twice");
}

#[test]
fn env_and_cwd_are_applied() {
    let mut h = harness(true);
    let mut s = h.sh("env", "echo \"$GREETING\"; pwd; echo \"$SYSG_UNIT_ID\"");
    s.env = vec![("GREETING".into(), "hello world".into())];
    s.cwd = Some(h.dir.path().to_path_buf());
    h.backend.start(&s).unwrap();
    let lines = h.lines_until("env", 3);
    assert_eq!(lines[0], (Kind::Stdout, "hello world".to_string()));
    assert_eq!(
        PathBuf::from(&lines[1].1).canonicalize().unwrap(),
        h.dir.path().canonicalize().unwrap()
    );
    assert!(lines[2].1.contains(&h.project), "{lines:?}");
    assert_eq!(h.exited("env").1, ExitStatus::Code(0));
}

/// A descendant that leaves the session, is orphaned and ignores SIGTERM is still killed.
fn double_fork(use_cgroups: bool) {
    let mut h = harness(use_cgroups);
    let pidfile = h.path("orphan.pid");
    let script = format!(
        "setsid sh -c 'trap \"\" TERM; sleep 1000 & echo $! > {}' & sleep 1000",
        pidfile.display()
    );
    let main = h.backend.start(&h.sh("forker", &script)).unwrap();
    let orphan = read_pid(&pidfile);
    assert!(alive(orphan));
    // The orphan is in another session: a plain process-group kill would miss it.
    wait_until("the orphan to reparent", || {
        procfs::stat(orphan).is_some_and(|s| s.ppid == std::process::id())
    });
    assert_ne!(procfs::stat(orphan).unwrap().session, main);
    h.backend.signal("forker", libc::SIGTERM).unwrap();
    // The main process ended, the orphan (ignoring TERM) lives on: the unit is not over, and
    // the backend says a stop was under way.
    match h.next_event("forker") {
        BackendEvent::MainExited {
            pid,
            stopping,
            stop_signal,
            stop_timeout,
            ..
        } => {
            assert_eq!(pid, main);
            assert!(stopping);
            assert_eq!((stop_signal, stop_timeout), (15, Duration::from_secs(5)));
        }
        other => panic!("expected MainExited, got {other:?}"),
    }
    assert!(
        alive(orphan),
        "nothing may be killed before the core says so"
    );
    // The core's stop timeout: the rest of the tree is killed, then the unit's end reported.
    h.backend.kill("forker").unwrap();
    let (pid, status) = h.exited("forker");
    assert_eq!(pid, main);
    assert_eq!(status, ExitStatus::Signal(libc::SIGTERM));
    // Killed as the rest of the tree, and reaped (no zombie left either).
    wait_until("the orphan to be gone", || {
        proc_start_time(orphan).is_none()
    });
}

#[test]
fn double_fork_leaves_no_survivor_with_cgroup() {
    double_fork(true);
}

#[test]
fn double_fork_leaves_no_survivor_without_cgroup() {
    double_fork(false);
}

/// A main process that exits leaving a child: `MainExited` (no stop under way, nothing killed),
/// then `Exited` with the main process's status once the child is gone too.
#[test]
fn a_main_exit_with_a_child_left_waits_for_the_unit_to_empty() {
    for cg in [true, false] {
        let mut h = harness(cg);
        let go = h.path("go");
        let pidfile = h.path("child.pid");
        let script = format!(
            "sh -c 'while [ ! -e {} ]; do sleep 0.05; done' & echo $! > {}; exit 4",
            go.display(),
            pidfile.display()
        );
        let main = h.backend.start(&h.sh("leaver", &script)).unwrap();
        let child = read_pid(&pidfile);
        match h.next_event("leaver") {
            BackendEvent::MainExited { pid, stopping, .. } => {
                assert_eq!((pid, stopping), (main, false), "cgroup: {cg}");
            }
            other => panic!("expected MainExited, got {other:?} (cgroup: {cg})"),
        }
        assert!(alive(child), "the child was killed (cgroup: {cg})");
        // The drained unit is not adoptable, but can still be signalled.
        assert!(h.backend.records().is_empty());
        std::fs::write(&go, "").unwrap();
        assert_eq!(
            h.exited("leaver"),
            (main, ExitStatus::Code(4)),
            "cgroup: {cg}"
        );
        assert!(!alive(child));
    }
}

#[test]
fn kill_reaches_the_whole_tree() {
    for cg in [true, false] {
        let mut h = harness(cg);
        let pidfile = h.path("child.pid");
        let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
        let main = h.backend.start(&h.sh("tree", &script)).unwrap();
        let child = read_pid(&pidfile);
        h.backend.kill("tree").unwrap();
        assert_eq!(h.exited("tree"), (main, ExitStatus::Signal(libc::SIGKILL)));
        wait_until("the child to be gone", || proc_start_time(child).is_none());
    }
}

#[test]
fn stdout_and_stderr_lines_arrive() {
    let mut h = harness(true);
    h.backend
        .start(&h.sh(
            "talker",
            "echo out1; echo err1 >&2; echo out2; printf partial",
        ))
        .unwrap();
    assert_eq!(h.exited("talker").1, ExitStatus::Code(0));
    let mut lines = h.lines_until("talker", 4);
    lines.sort_by_key(|(k, l)| (format!("{k:?}"), l.clone()));
    assert_eq!(
        lines,
        vec![
            (Kind::Stderr, "err1".to_string()),
            (Kind::Stdout, "out1".to_string()),
            (Kind::Stdout, "out2".to_string()),
            (Kind::Stdout, "partial".to_string()),
        ]
    );
    // The FIFOs go away once drained.
    let run = h.dir.path().join("run");
    wait_until("the FIFOs to be removed", || {
        !run.join("talker.stdout.fifo").exists() && !run.join("talker.stderr.fifo").exists()
    });
}

#[test]
fn many_lines_in_order() {
    let mut h = harness(false);
    h.backend
        .start(&h.sh(
            "counter",
            "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done",
        ))
        .unwrap();
    let lines = h.lines_until("counter", 2000);
    for (i, (kind, l)) in lines.iter().enumerate() {
        assert_eq!(*kind, Kind::Stdout);
        assert_eq!(l, &format!("line-{i}"));
    }
    assert_eq!(h.exited("counter").1, ExitStatus::Code(0));
}

#[test]
fn echo_gets_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (etx, erx) = mpsc::channel();
    let etx = Mutex::new(etx);
    let opener: LogOpener = Box::new(|_: &Path, _: &str, _, _| None);
    let mut b = ProcessBackend::with_options(
        BackendPaths {
            log_dir: dir.path().join("logs"),
            run_dir: dir.path().join("run"),
            fifo_dir: dir.path().join("run"),
        },
        Some(Box::new(move |unit: &str, kind, line: &[u8]| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(format!("{unit} {kind:?} {}", String::from_utf8_lossy(line)));
            }
        })),
        Box::new(move |ev| {
            if let Ok(tx) = etx.lock() {
                let _ = tx.send(ev);
            }
        }),
        ProcessOptions {
            use_cgroups: false,
            log_opener: Some(opener),
            project: None,
        },
    )
    .unwrap();
    b.start(&spec(&project(), "echoer", &["echo", "hi"]))
        .unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "echoer Stdout hi");
    assert!(erx.recv_timeout(DEADLINE).is_ok());
}

#[test]
fn fifo_keeps_output_without_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.fifo");
    let (reader, writer) = spawn::make_fifo(&path).unwrap();
    drop(reader);
    // The writer's own O_RDWR descriptor counts as a reader: no SIGPIPE, no block.
    std::io::Write::write_all(&mut &writer, b"kept\n").unwrap();
    let reader = spawn::open_fifo_reader(&path).unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut &reader, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept\n");
}

#[test]
fn adopt_after_supervisor_restart_keeps_output() {
    let dir = tempfile::tempdir().unwrap();
    let project = project();
    let go = dir.path().join("go");
    let done = dir.path().join("done");
    let script = format!(
        "echo before; while [ ! -e {go} ]; do sleep 0.02; done; echo after-crash; touch {done}; exec sleep 1000",
        go = go.display(),
        done = done.display()
    );
    let h1 = {
        let mut h = harness_in(dir, project.clone(), true);
        h.backend.start(&h.sh("svc", &script)).unwrap();
        assert_eq!(
            h.lines_until("svc", 1),
            vec![(Kind::Stdout, "before".into())]
        );
        h
    };
    let record = h1.backend.records().remove(0);
    assert!(record.extra["stdout_fifo"].is_string());
    // "Crash": the backend goes away, the unit keeps running and writes with no reader.
    let Harness { backend, dir, .. } = h1;
    drop(backend);
    std::fs::write(&go, b"").unwrap();
    wait_until("the unit to write while unsupervised", || done.exists());

    let mut h2 = harness_in(dir, project, true);
    let mut wrong = record.clone();
    wrong.start_time += 1;
    assert_eq!(h2.backend.adopt(&wrong).unwrap(), None);
    let mut gone = record.clone();
    gone.pid = u32::MAX / 2;
    assert_eq!(h2.backend.adopt(&gone).unwrap(), None);
    // Forged records (the state file is untrusted): another process leading its own session,
    // the unit under another name, the unit with another cgroup. None is adopted.
    let mut victim = std::process::Command::new("setsid")
        .args(["sleep", "1000"])
        .spawn()
        .unwrap();
    wait_until("the victim's own session", || {
        procfs::stat(victim.id()).is_some_and(|s| s.session == victim.id())
    });
    let mut ghost = record.clone();
    ghost.unit = "ghost".into();
    ghost.pid = victim.id();
    ghost.start_time = proc_start_time(victim.id()).unwrap();
    ghost.extra["pgid"] = victim.id().into();
    ghost.extra["marker"] = serde_json::Value::Null;
    let mut renamed = record.clone();
    renamed.unit = "ghost".into();
    let mut moved = record.clone();
    moved.extra["cgroup"] = "/sys/fs/cgroup".into();
    for forged in [&ghost, &renamed, &moved] {
        assert!(
            matches!(
                h2.backend.adopt(forged),
                Err(BackendError::Untrusted { .. })
            ),
            "{forged:?}"
        );
    }
    assert!(h2.backend.records().is_empty());
    assert!(matches!(victim.try_wait(), Ok(None)));
    let _ = victim.kill();
    let _ = victim.wait();
    assert_eq!(h2.backend.adopt(&record).unwrap(), Some(record.pid));
    assert_eq!(
        h2.lines_until("svc", 1),
        vec![(Kind::Stdout, "after-crash".into())]
    );
    assert_eq!(h2.backend.records(), vec![record.clone()]);
    h2.backend.signal("svc", libc::SIGTERM).unwrap();
    let (pid, status) = h2.exited("svc");
    assert_eq!(pid, record.pid);
    // In a real restart the process is not our child (Unknown); in this test it is.
    assert!(
        matches!(
            status,
            ExitStatus::Signal(libc::SIGTERM) | ExitStatus::Unknown
        ),
        "{status:?}"
    );
}

#[test]
fn restart_after_exit_reuses_names() {
    let mut h = harness(true);
    for i in 0..3 {
        h.backend
            .start(&h.sh("again", &format!("echo run-{i}")))
            .unwrap();
        assert_eq!(h.exited("again").1, ExitStatus::Code(0));
        assert_eq!(
            h.lines_until("again", 1),
            vec![(Kind::Stdout, format!("run-{i}"))]
        );
    }
}

/// The process's name (`/proc/PID/comm`).
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Identity, capabilities, limits, isolation and the start paths (same helpers as here).
#[path = "privs_tests.rs"]
mod privs_tests;
