//! Files the supervisor reads or writes stay bounded whatever they are: a config or env file
//! that is a FIFO, a device or huge is refused fast without stalling the event loop, and
//! the supervisor's own log does not grow without limit under a crash loop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);
/// A refusal must be immediate, not "once something writes to the FIFO".
const FAST: Duration = Duration::from_secs(10);

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// A config larger than the 4 MiB limit (valid YAML comments, so only the size is wrong).
fn huge_config(p: &Project) -> String {
    let line = format!("# {}\n", "x".repeat(1000));
    let body = line.repeat(4_400); // 4.4 MB: over the 4 MiB limit
    let path = p.write(
        "huge.yaml",
        &format!("version: \"1\"\nservices:\n  a:\n    command: \"sleep 1\"\n{body}"),
    );
    path.to_string_lossy().into_owned()
}

/// `sysg args..` must end within FAST with exit code 2 and `want` in its stderr.
fn refused_fast(p: &Project, args: &[&str], want: &str) {
    let t = Instant::now();
    let out = run_bounded(p.cmd(args), FAST);
    assert!(t.elapsed() < FAST, "{args:?} took {:?}", t.elapsed());
    assert_ne!(out.status.code(), Some(0), "{args:?} succeeded: {out:?}");
    let err = stderr(&out);
    assert!(err.contains(want), "{args:?}: expected {want:?} in: {err}");
}

#[test]
fn validate_and_start_refuse_configs_that_are_not_regular_files_or_too_large() {
    let p = Project::new("version: \"1\"\nservices:\n  a:\n    command: \"sleep 1000\"\n");
    let fifo = p.dir.join("fifo.yaml");
    mkfifo(&fifo);
    let fifo = fifo.to_string_lossy().into_owned();
    let huge = huge_config(&p);
    for cmd in ["validate", "start"] {
        let extra: &[&str] = if cmd == "start" {
            &["--daemonize"]
        } else {
            &[]
        };
        let with = |config: &str| {
            let mut v = vec![cmd, "--config", config];
            v.extend_from_slice(extra);
            v.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        for (config, want) in [
            (fifo.as_str(), "is a FIFO (named pipe), not a regular file"),
            ("/dev/zero", "is a character device, not a regular file"),
            (huge.as_str(), "larger than 4194304 bytes"),
        ] {
            let args = with(config);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            refused_fast(&p, &args, want);
        }
    }
    assert!(p.supervisor_pid().is_none(), "nothing was started");
}

#[test]
fn an_env_file_that_is_a_fifo_is_refused_with_its_position() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  a:\n    command: \"sleep 1000\"\n    env:\n      file: vars.env\n",
    );
    mkfifo(&p.dir.join("vars.env"));
    refused_fast(
        &p,
        &["validate"],
        "systemg.yaml:6:13: env file error: services.a.env.file: env file",
    );
    refused_fast(
        &p,
        &["validate"],
        "is a FIFO (named pipe), not a regular file",
    );
    refused_fast(&p, &["start", "--daemonize"], "is a FIFO (named pipe)");
    std::fs::remove_file(p.dir.join("vars.env")).expect("remove the FIFO");
    p.write("vars.env", &format!("A={}\n", "x".repeat(2 * 1024 * 1024)));
    refused_fast(&p, &["validate"], "is larger than 1 MiB, the limit");
}

fn rss_kib(pid: i32) -> u64 {
    proc_status_field(&pid.to_string(), "VmRSS")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn reloads_of_hostile_files_fail_fast_and_the_loop_keeps_restarting_services() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  crashy:\n    command: \"sleep 1000\"\n    restart_policy: always\n    backoff: 10ms\n",
    );
    p.start();
    let sup = p.supervisor_pid().expect("supervisor pid");
    let fifo = p.dir.join("fifo.yaml");
    mkfifo(&fifo);
    let fifo = fifo.to_string_lossy().into_owned();
    let huge = huge_config(&p);
    for (config, want) in [
        (fifo.as_str(), "is a FIFO (named pipe), not a regular file"),
        ("/dev/zero", "is a character device, not a regular file"),
        (huge.as_str(), "larger than 4194304 bytes"),
    ] {
        // The reload goes to the supervisor in the background while a service crashes.
        let mut reload = p.cmd(&["restart", "--config", config]);
        reload
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = reload.spawn().expect("spawn reload");
        let before = p.pid("crashy");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(before as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the service");
        wait_until("the crashed service is restarted", T, || {
            let s = p.service("crashy");
            s["pid"].as_u64().is_some_and(|pid| pid as u32 != before)
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = rx
            .recv_timeout(FAST)
            .expect("the reload is answered fast")
            .expect("wait for the reload");
        assert_ne!(out.status.code(), Some(0), "reload of {config} succeeded");
        let err = stderr(&out);
        assert!(err.contains(want), "reload of {config}: {err}");
    }
    assert!(
        rss_kib(sup) < 200 * 1024,
        "the supervisor grew to {} KiB",
        rss_kib(sup)
    );
    // The supervisor still takes a good reload, once the last restart is past its start-up
    // (a reload answers with a failure while a service fails during start-up).
    wait_until("crashy to be up past its start-up", T, || {
        p.service("crashy")["uptime_secs"]
            .as_f64()
            .is_some_and(|u| u >= 0.5)
    });
    assert_ok(&p.sysg(&["restart", "--config", "systemg.yaml"]), "reload");
}

#[test]
fn a_partial_line_read_before_the_supervisor_is_killed_is_in_the_log() {
    let p = Project::new("version: \"1\"\nservices:\n  a:\n    command: \"sleep 1\"\n");
    let go = p.dir.join("go");
    p.write(
        "systemg.yaml",
        &format!(
            "version: \"1\"\nservices:\n  talker:\n    command: \"printf half-a-line; while [ ! -e {} ]; do sleep 0.05; done; printf ' and its end\\\\n'; exec sleep 1000\"\n",
            go.display()
        ),
    );
    p.start();
    let log = p.state_dir().join("logs/talker.stdout.log");
    let on_disk = || std::fs::read_to_string(&log).unwrap_or_default();
    // The supervisor read the partial line: it must be on disk, not only in its memory.
    wait_until("the partial line is in the log file", T, || {
        on_disk().contains("half-a-line")
    });
    let sup = p.supervisor_pid().expect("supervisor pid");
    let pid = p.pid("talker");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the supervisor");
    wait_until("the supervisor is gone", T, || !alive(sup as u32));
    p.start();
    assert_eq!(p.pid("talker"), pid, "re-adopted");
    std::fs::write(&go, "").expect("touch go");
    wait_until("the end of the line reaches the log", T, || {
        stdout(&p.sysg(&["logs", "--service", "talker"])).contains("and its end")
    });
    let shown = stdout(&p.sysg(&["logs", "--service", "talker"]));
    assert!(
        shown.contains("half-a-line"),
        "lost across the crash: {shown}"
    );
}

/// A config of `n` services in a zero-backoff crash loop, plus one that stays up.
fn crash_loops(n: usize, logs: &str) -> String {
    let mut y =
        format!("version: \"1\"\n{logs}services:\n  steady:\n    command: \"exec sleep 1000\"\n");
    for i in 0..n {
        y.push_str(&format!(
            "  crash{i}:\n    command: \"exit 1\"\n    restart_policy: always\n    backoff: 0s\n"
        ));
    }
    y
}

/// `sysg start -d` in the background (a start that never settles may not return), reaped
/// after the project is stopped.
fn start_in_background(p: &Project) -> std::process::Child {
    let mut start = p.cmd(&["start", "--daemonize"]);
    start
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = start.spawn().expect("spawn start");
    wait_until("the supervisor is up", T, || {
        p.supervisor_pid().is_some() && p.state_dir().join("run/control.sock").exists()
    });
    child
}

fn restarts(p: &Project, name: &str) -> u64 {
    p.service(name)["restarts"].as_u64().unwrap_or(0)
}

#[test]
fn a_crash_loop_is_rate_limited_in_the_supervisor_log() {
    let p = Project::new(&crash_loops(1, ""));
    let start = start_in_background(&p);
    wait_until(
        "the service crashed 150 times",
        Duration::from_secs(60),
        || restarts(&p, "crash0") >= 150,
    );
    let log =
        std::fs::read_to_string(p.state_dir().join("logs/supervisor.log")).unwrap_or_default();
    let about = |what: &str| {
        log.lines()
            .filter(|l| l.contains("unit=crash0") && l.contains(what))
            .count()
    };
    // 150 exits and restarts, but each message at most a burst per 10 s window.
    assert!(
        about("exited") <= 20,
        "{} exit lines:\n{log}",
        about("exited")
    );
    assert!(
        about("started") <= 20,
        "{} start lines:\n{log}",
        about("started")
    );
    assert!(
        log.lines().count() < 100,
        "{} lines:\n{log}",
        log.lines().count()
    );
    assert_ok(&p.sysg(&["stop"]), "stop");
    reap(start, T);
}

#[test]
fn the_supervisor_log_rotates_by_the_project_log_policy() {
    let p = Project::new(&crash_loops(12, "logs: {max_size: 4K, max_files: 1}\n"));
    let start = start_in_background(&p);
    let dir = p.state_dir().join("logs");
    wait_until("supervisor.log rotated", Duration::from_secs(60), || {
        dir.join("supervisor.log.1").exists()
    });
    wait_until("the crash loops went on", Duration::from_secs(60), || {
        restarts(&p, "crash0") >= 50
    });
    for name in ["supervisor.log", "supervisor.log.1"] {
        let len = std::fs::metadata(dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        // The limit, plus at most one line that did not fit.
        assert!(len <= 4096 + 1024, "{name} is {len} bytes");
    }
    assert!(!dir.join("supervisor.log.2").exists(), "max_files: 1");
    // The supervisor still logs into the new file.
    assert_ok(&p.sysg(&["stop"]), "stop");
    reap(start, T);
    let log = std::fs::read_to_string(dir.join("supervisor.log")).unwrap_or_default();
    assert!(!log.is_empty(), "nothing in the rotated-to file");
}
