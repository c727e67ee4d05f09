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

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn user_group_limits_and_capabilities_are_applied() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("skipped: no user `nobody`");
        return;
    };
    let mut h = harness(true);
    let mut s = h.sh(
        "privs",
        "id -u; id -g; ulimit -n; nice; grep Cpus_allowed_list /proc/self/status; \
         grep CapAmb /proc/self/status; grep CapEff /proc/self/status; id -G",
    );
    s.user = Some("nobody".into());
    s.supplementary_groups = vec!["0".into()];
    s.limits.nofile = Some(crate::config::schema::Size::Value(1234));
    s.limits.nice = Some(5);
    s.limits.cpu_affinity = Some(vec![0]);
    s.capabilities = Some(vec!["CAP_NET_BIND_SERVICE".into()]);
    h.backend.start(&s).unwrap();
    let lines: Vec<String> = h
        .lines_until("privs", 8)
        .into_iter()
        .map(|(k, l)| {
            assert_eq!(k, Kind::Stdout, "{l}");
            l
        })
        .collect();
    assert_eq!(lines[0], nobody.uid.to_string());
    assert_eq!(lines[1], nobody.gid.to_string());
    assert_eq!(lines[2], "1234");
    assert_eq!(lines[3], "5");
    assert!(lines[4].ends_with("\t0"), "{lines:?}");
    assert!(lines[5].ends_with("0000000000000400"), "{lines:?}");
    assert!(lines[6].ends_with("0000000000000400"), "{lines:?}");
    assert!(lines[7].split(' ').any(|g| g == "0"), "{lines:?}");
    assert_eq!(h.exited("privs").1, ExitStatus::Code(0));
}

#[test]
fn network_isolation_leaves_only_loopback() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut h = harness(true);
    let mut s = h.sh(
        "netns",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    );
    s.isolation.network = true;
    s.isolation.mount = true;
    match h.backend.start(&s) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("skipped: namespaces unavailable here: {e}");
            return;
        }
    }
    assert_eq!(h.lines_until("netns", 1), vec![(Kind::Stdout, "lo".into())]);
    assert_eq!(h.exited("netns").1, ExitStatus::Code(0));
}

#[test]
fn cgroup_limits_are_written_or_refused() {
    let mut h = harness(true);
    let mut s = h.spec("limited", &["sleep", "1000"]);
    s.limits.cgroup.memory_max = Some(crate::config::schema::Size::Value(64 << 20));
    match h.backend.start(&s) {
        Ok(_) => {
            let rec = h.backend.records().remove(0);
            let dir = PathBuf::from(rec.extra["cgroup"].as_str().unwrap());
            let v = std::fs::read_to_string(dir.join("memory.max")).unwrap();
            assert_eq!(v.trim(), (64u64 << 20).to_string());
            h.backend.kill("limited").unwrap();
            h.exited("limited");
        }
        Err(e) => {
            assert!(e.to_string().contains("limits.cgroup"), "{e}");
            assert!(h.backend.records().is_empty());
        }
    }
}

/// `Cap*:` lines of /proc/PID/status.
fn cap_lines(pid: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_plain_service_keeps_the_supervisors_capabilities() {
    let mut h = harness(true);
    let pid = h
        .backend
        .start(&h.spec("plain", &["sleep", "1000"]))
        .unwrap();
    // Wait for the exec: before it, /proc shows the forked copy of this process.
    wait_until("the exec", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let mine = cap_lines("self");
    let theirs = cap_lines(&pid.to_string());
    // Root's exec recomputes the permitted and effective sets from the bounding set; for a
    // supervisor whose sets are all the bounding set (a root shell) nothing changes.
    let field = |v: &[String], k: &str| v.iter().find(|l| l.starts_with(k)).cloned();
    assert_eq!(field(&theirs, "CapBnd"), field(&mine, "CapBnd"));
    assert_eq!(field(&theirs, "CapAmb"), field(&mine, "CapAmb"));
    if is_root()
        && field(&mine, "CapEff").map(|l| l.replace("CapEff", ""))
            == field(&mine, "CapBnd").map(|l| l.replace("CapBnd", ""))
    {
        assert_eq!(field(&theirs, "CapEff"), field(&mine, "CapEff"));
    }
    h.backend.kill("plain").unwrap();
    h.exited("plain");
}

#[test]
fn a_capability_the_supervisor_lacks_is_refused() {
    let bnd = cap_lines("self")
        .into_iter()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap();
    let Some(missing) = (0..=40u32).find(|c| bnd & (1 << c) == 0) else {
        eprintln!("skipped: this process holds every capability");
        return;
    };
    let name = crate::config::caps::CAPABILITIES[missing as usize];
    let mut h = harness(true);
    let mut s = h.spec("cap", &["true"]);
    s.capabilities = Some(vec![name.to_string()]);
    let e = h.backend.start(&s).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "capabilities: {name}: the supervisor does not hold"
        )),
        "{e}"
    );
}

#[test]
fn raising_a_hard_limit_needs_cap_sys_resource() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) }, 0);
    if lim.rlim_max == libc::RLIM_INFINITY {
        eprintln!("skipped: RLIMIT_NPROC has no hard limit here");
        return;
    }
    let want = lim.rlim_max + 1;
    let mut h = harness(true);
    let mut s = h.spec("nproc", &["sleep", "1000"]);
    s.limits.nproc = Some(crate::config::schema::Size::Value(want));
    let has_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0);
    match h.backend.start(&s) {
        Ok(pid) => {
            assert!(has_resource, "raised without CAP_SYS_RESOURCE");
            let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
            let line = limits
                .lines()
                .find(|l| l.starts_with("Max processes"))
                .unwrap();
            assert!(line.contains(&want.to_string()), "{line}");
            h.backend.kill("nproc").unwrap();
            h.exited("nproc");
        }
        Err(e) => {
            assert!(!has_resource, "{e}");
            let e = e.to_string();
            assert!(
                e.contains("limits.nproc") && e.contains("CAP_SYS_RESOURCE"),
                "{e}"
            );
        }
    }
}

/// `NSpid:` of a process: its pid in each namespace, outermost first.
fn nspid(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pid_isolation_makes_the_service_pid_1_and_keeps_its_exit_status() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for mount in [true, false] {
        let mut h = harness(true);
        let ready = h.path("ready");
        // PID 1 ignores signals it has no handler for: trap TERM to exit with a code.
        let script = format!(
            "trap 'exit 3' TERM; echo $$; ls /proc | grep -c '^[0-9]'; touch {}; sleep 1000 & wait",
            ready.display()
        );
        let mut s = h.sh("pidns", &script);
        s.isolation.pid = true;
        s.isolation.mount = mount;
        let pid = h.backend.start(&s).unwrap();
        wait_until("the service to be ready", || ready.exists());
        assert_eq!(nspid(pid), vec![pid, 1], "mount={mount}");
        let ours = std::fs::read_link("/proc/self/ns/pid").unwrap();
        assert_ne!(
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
            ours
        );
        // The supervisor's own pid namespace for later children is untouched.
        assert_eq!(
            std::fs::read_link("/proc/self/ns/pid_for_children").unwrap(),
            ours
        );
        let lines = h.lines_until("pidns", 2);
        assert_eq!(lines[0], (Kind::Stdout, "1".to_string()));
        if mount {
            // A fresh /proc shows the namespace only: the shell, sleep, ls, grep.
            let n: u32 = lines[1].1.parse().unwrap();
            assert!(n <= 4, "{lines:?}");
        }
        assert_eq!(h.backend.records()[0].pid, pid);
        h.backend.signal("pidns", libc::SIGTERM).unwrap();
        assert_eq!(h.exited("pidns"), (pid, ExitStatus::Code(3)));
        wait_until("the service to be reaped", || {
            proc_start_time(pid).is_none()
        });
    }
}

#[test]
fn pid_isolation_kill_and_failures() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut h = harness(false);
    let mut s = h.spec("pid1", &["sleep", "1000"]);
    s.isolation.pid = true;
    let pid = h.backend.start(&s).unwrap();
    assert_eq!(nspid(pid), vec![pid, 1]);
    // Process-group tracking: the unit is its own session, as without isolation.
    assert_eq!(procfs::stat(pid).unwrap().session, pid);
    h.backend.kill("pid1").unwrap();
    assert_eq!(h.exited("pid1"), (pid, ExitStatus::Signal(libc::SIGKILL)));

    // A failure after the second fork still names the field and leaves nothing behind.
    let mut s = h.spec("pid1", &["true"]);
    s.isolation.pid = true;
    s.limits.cpu_affinity = Some(vec![1000]);
    let e = h.start_failure(&s);
    assert!(e.contains("limits.cpu_affinity"), "{e}");
    let mut s = h.spec("pid1", &["/nonexistent/program-xyz"]);
    s.isolation.pid = true;
    let e = h.backend.start(&s).unwrap_err().to_string();
    assert!(e.contains("program-xyz"), "{e}");
    assert!(h.backend.records().is_empty());
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_plain_command_runs_without_the_shell() {
    let mut h = harness(true);
    let pid = h.backend.start(&h.sh("plain", "exec sleep 1000")).unwrap();
    wait_until("sleep to run", || comm(pid) == "sleep");
    // No shell in between: the unit's main process is the program itself.
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(super::spawn::tests_support::which("sleep")).unwrap()
    );
    h.backend.kill("plain").unwrap();
    h.exited("plain");
    // Anything the shell must interpret still goes through it.
    let pid = h
        .backend
        .start(&h.sh("shell", "sleep 1000; exit 3"))
        .unwrap();
    wait_until("the shell to run", || {
        comm(pid) != "sysg" && !comm(pid).is_empty()
    });
    assert_ne!(comm(pid), "sleep");
    h.backend.kill("shell").unwrap();
    h.exited("shell");
    // A plain command whose program is not found is left to the shell, which says so.
    let pid = h
        .backend
        .start(&h.sh("nf", "no-such-program-xyz 1"))
        .unwrap();
    assert_eq!(h.exited("nf"), (pid, ExitStatus::Code(127)));
    let lines = h.lines_until("nf", 1);
    assert!(lines[0].1.contains("no-such-program-xyz"), "{lines:?}");
}

#[test]
fn without_clone3_the_child_is_forked_and_waited_for() {
    let _fallback = super::spawn::tests_support::ForceFork::new();
    let mut h = harness(true);
    let pid = h
        .backend
        .start(&h.spec("forked", &["sleep", "1000"]))
        .unwrap();
    // Waited for: it has run its exec already.
    assert_eq!(comm(pid), "sleep");
    h.backend.signal("forked", libc::SIGTERM).unwrap();
    assert_eq!(h.exited("forked"), (pid, ExitStatus::Signal(libc::SIGTERM)));
    let mut s = h.spec("affinity", &["true"]);
    s.limits.cpu_affinity = Some(vec![1000]);
    let e = h.backend.start(&s).unwrap_err().to_string();
    assert!(e.contains("limits.cpu_affinity"), "{e}");
    // The child that gave up was reaped, not left a zombie.
    assert!(h.backend.records().is_empty());
}

#[test]
fn sockets_reach_the_child_as_sd_listen_fds_on_the_fork_path_too() {
    let _fallback = super::spawn::tests_support::ForceFork::new();
    let mut h = harness(true);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut s = h.sh(
        "sk",
        "echo \"$LISTEN_FDS $LISTEN_PID $$ $LISTEN_FDNAMES\"; exec sleep 1000",
    );
    s.sockets = vec![crate::config::sockets::ListenSocket {
        listen: crate::config::sockets::ListenAddr::Tcp(
            format!("127.0.0.1:{port}").parse().unwrap(),
        ),
        name: "web".into(),
    }];
    let pid = h.backend.start(&s).unwrap();
    let lines = h.lines_until("sk", 1);
    assert_eq!(lines[0].1, format!("1 {pid} {pid} web"), "{lines:?}");
    let fd3 = std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap();
    assert!(fd3.to_string_lossy().starts_with("socket:["), "{fd3:?}");
    // The supervisor listens: a connection is queued even before the child accepts.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    h.backend.signal("sk", libc::SIGTERM).unwrap();
    assert_eq!(h.exited("sk"), (pid, ExitStatus::Signal(libc::SIGTERM)));
}
