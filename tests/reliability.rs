//! Reliability suite, process backend on the host: supervisor crashes at bad moments, stops of
//! hostile process trees, a log flood, abusive control clients, an idle supervisor that must
//! not wake up, a full disk and read-only directories. Bounds on time and memory here are
//! generous correctness guards, not benchmarks (those are in bench/run).
//!
//! The systemd backend's counterparts are in reliability_systemd.rs; config fuzzing is in
//! config_fuzz.rs. Spawn storms belong to dynamic spawning, which does not exist yet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;
#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use support::{is_root, recorded_pids, rss_kib, size_of_files, wakeups, wakeups_by_thread, Tmpfs};

const T: Duration = Duration::from_secs(20);

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

fn spawn_sysg(p: &Project, args: &[&str]) -> Child {
    p.cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sysg")
}

/// A service that appends its pid to `runs/<name>` each time it starts, then sleeps.
fn recording(name: &str, extra: &str) -> String {
    format!("  {name}:\n    command: \"echo $$ >> runs/{name}; exec sleep 1000\"\n{extra}")
}

/// What is wrong with "every service runs exactly once, as the status says".
fn once_violations(p: &Project, names: &[String]) -> Vec<String> {
    let st = p.status();
    let mut bad = Vec::new();
    for n in names {
        let s = st["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == n.as_str()).cloned())
            .unwrap_or_default();
        let pid = s["pid"].as_u64().map(|p| p as u32);
        let live: Vec<u32> = recorded_pids(&p.dir.join("runs").join(n))
            .into_iter()
            .filter(|&x| support::alive(x))
            .collect();
        if s["state"] != "running" || pid.is_none() || live != pid.into_iter().collect::<Vec<_>>() {
            bad.push(format!(
                "{n}: state {}, status pid {pid:?}, live instances {live:?}",
                s["state"]
            ));
        }
    }
    bad
}

fn assert_each_runs_once(p: &Project, names: &[String]) {
    let deadline = Instant::now() + T;
    loop {
        let bad = once_violations(p, names);
        if bad.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "services not running exactly once:\n{}",
            bad.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The persisted state names every running service with the pid the status shows.
fn assert_state_matches_status(p: &Project, names: &[String]) {
    let text = std::fs::read_to_string(p.state_dir().join("state.json")).expect("state.json");
    let state: serde_json::Value = serde_json::from_str(&text).expect("state.json is JSON");
    for n in names {
        let rec = state["records"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["unit"] == n.as_str()).cloned())
            .unwrap_or_else(|| panic!("no record of {n} in {state}"));
        assert_eq!(rec["pid"].as_u64(), Some(u64::from(p.pid(n))), "{n}");
    }
}

/// After a full stop, no instance any service ever started is alive.
fn assert_all_gone(p: &Project, names: &[String]) {
    assert_ok(&p.sysg(&["stop"]), "stop");
    let all: Vec<u32> = names
        .iter()
        .flat_map(|n| recorded_pids(&p.dir.join("runs").join(n)))
        .collect();
    wait_until("every instance is gone", T, || {
        all.iter().all(|&x| !support::alive(x))
    });
}

#[test]
fn kill_9_while_services_start_leaves_each_running_once() {
    let mut yaml = String::from("version: \"1\"\nservices:\n");
    let mut names = Vec::new();
    for i in 0..6 {
        yaml += &recording(&format!("a{i}"), "");
        // b waits for a's settle window: the supervisor dies with half the services started.
        yaml += &recording(&format!("b{i}"), &format!("    depends_on: [a{i}]\n"));
        names.push(format!("a{i}"));
        names.push(format!("b{i}"));
    }
    let p = Project::new(&yaml);
    std::fs::create_dir(p.dir.join("runs")).expect("runs dir");
    let start = spawn_sysg(&p, &["start", "--daemonize"]);
    wait_until("the a services started", T, || {
        (0..6).all(|i| p.dir.join(format!("runs/a{i}")).exists())
    });
    let sup = p.supervisor_pid().expect("supervisor pid");
    kill9(sup);
    reap(start, T);
    wait_until("the supervisor is gone", T, || !alive(sup as u32));

    p.start();
    assert_each_runs_once(&p, &names);
    assert_state_matches_status(&p, &names);
    assert_all_gone(&p, &names);
}

#[test]
fn kill_9_during_a_crash_backoff_keeps_counters_and_starts_once() {
    let yaml = format!(
        "version: \"1\"\nservices:\n  flaky:\n    command: \"echo $$ >> runs/flaky; if [ -e crashed ]; then exec sleep 1000; fi; touch crashed; exit 1\"\n    backoff: 5s\n{}",
        recording("steady", "")
    );
    let p = Project::new(&yaml);
    std::fs::create_dir(p.dir.join("runs")).expect("runs dir");
    let _ = p.sysg(&["start", "--daemonize"]);
    wait_until("flaky waits in backoff", T, || {
        p.service("flaky")["state"] == "backoff"
    });
    let steady = p.pid("steady");
    let sup = p.supervisor_pid().expect("supervisor pid");
    kill9(sup);
    // Until it is reaped it still holds the project lock.
    wait_until("the supervisor is gone", T, || !alive(sup as u32));

    p.start();
    let names = vec!["flaky".to_string(), "steady".to_string()];
    assert_each_runs_once(&p, &names);
    assert_eq!(p.pid("steady"), steady, "steady was adopted, not restarted");
    let flaky = p.service("flaky");
    assert!(
        flaky["restarts"].as_u64() >= Some(1),
        "the restart counter survived: {flaky}"
    );
    assert_eq!(flaky["last_exit"]["value"], 1, "{flaky}");
    assert_all_gone(&p, &names);
}

#[test]
fn kill_9_during_a_restart_adopts_the_old_instance() {
    let p = Project::new(&format!(
        "version: \"1\"\nservices:\n  stubborn:\n    command: \"trap '' TERM; echo $$ >> runs/stubborn; exec sleep 1000\"\n    stop_timeout: 3s\n{}",
        recording("other", "")
    ));
    std::fs::create_dir(p.dir.join("runs")).expect("runs dir");
    p.start();
    let old = p.pid("stubborn");
    let restart = spawn_sysg(&p, &["restart", "--service", "stubborn"]);
    wait_until("stubborn is stopping", T, || {
        p.service("stubborn")["state"] == "stopping"
    });
    let sup = p.supervisor_pid().expect("supervisor pid");
    kill9(sup);
    reap(restart, T);
    wait_until("the supervisor is gone", T, || !alive(sup as u32));

    p.start();
    let names = vec!["stubborn".to_string(), "other".to_string()];
    assert_each_runs_once(&p, &names);
    assert_eq!(
        p.pid("stubborn"),
        old,
        "the instance still alive is adopted"
    );
    assert_state_matches_status(&p, &names);
    assert_all_gone(&p, &names);
}

/// A main process ignoring SIGTERM with four kinds of escapees: a double-forked daemon, a new
/// session, a child ignoring SIGTERM, and one that leaves the session, is orphaned and execs a
/// new program with an empty environment.
const HOSTILE: &str = r#"mkdir -p pids
( sleep 1001 & echo $! > pids/double ) &
setsid sh -c 'sleep 1002 & echo $! > pids/setsid; wait' &
sh -c 'trap "" TERM; echo $$ > pids/noterm; exec sleep 1003' &
( setsid sh -c 'echo $$ > pids/exec; exec env -i sleep 1004' & ) &
trap '' TERM
echo $$ > pids/main
while :; do sleep 1; done
"#;

const HOSTILE_PIDS: [&str; 5] = ["main", "double", "setsid", "noterm", "exec"];

fn hostile_pids(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    wait_until("every hostile process wrote its pid", T, || {
        pids = HOSTILE_PIDS
            .iter()
            .filter_map(|n| read_pid(&dir.join("pids").join(n)))
            .collect();
        pids.len() == HOSTILE_PIDS.len()
    });
    // The last one really is another program now, without our marker.
    let exec = pids[4];
    wait_until("the exec'd process runs sleep", T, || {
        std::fs::read_to_string(format!("/proc/{exec}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert!(!std::fs::read(format!("/proc/{exec}/environ"))
        .unwrap_or_default()
        .windows(12)
        .any(|w| w == b"SYSG_UNIT_ID"));
    pids
}

#[test]
fn stop_leaves_no_survivor_of_a_hostile_tree() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  hostile:\n    exec: [\"sh\", \"./hostile.sh\"]\n    stop_timeout: 1s\n",
    );
    p.write("hostile.sh", HOSTILE);
    p.start();
    let mut pids = hostile_pids(&p.dir);
    assert!(pids.iter().all(|&x| alive(x)));
    let state = std::fs::read_to_string(p.state_dir().join("state.json")).unwrap_or_default();
    let escapee = pids[4];
    if !state.contains("\"kill_mode\": \"cgroup\"") {
        // Without a cgroup (typically not root) the orphan that cleared its environment is out
        // of reach, a documented limit of the fallback (src/backend/process/tree.rs).
        println!("no cgroup for the unit: the env-clearing orphan is a known escapee");
        pids.pop();
    }
    assert_ok(&p.sysg(&["stop"]), "stop");
    let gone = wait_until_ok(T, || pids.iter().all(|&x| !alive(x)));
    if alive(escapee) && !pids.contains(&escapee) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(escapee as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        gone,
        "survivors: {:?}",
        pids.iter().filter(|&&x| alive(x)).collect::<Vec<_>>()
    );
}

/// Poll `cond` until it holds or `limit` passes; whether it held.
fn wait_until_ok(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn stop_signal_reaches_the_service_unblocked() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  s:\n    command: \"exec sleep 1000\"\n    stop_timeout: 60s\n",
    );
    p.start();
    let pid = p.pid("s");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let blocked = status
        .lines()
        .find(|l| l.starts_with("SigBlk:"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string());
    assert_eq!(
        blocked.as_deref(),
        Some("0000000000000000"),
        "a service must start with no blocked signal"
    );
    assert_ok(&p.sysg(&["restart", "--service", "s"]), "restart");
    let s = p.service("s");
    // SIGTERM ended it; a blocked SIGTERM would have meant a SIGKILL after 60 s.
    assert_eq!(s["last_exit"]["kind"], "signal", "{s}");
    assert_eq!(s["last_exit"]["value"], 15, "{s}");
}

// ----- the control socket -----

fn socket(p: &Project) -> PathBuf {
    p.state_dir().join("run/control.sock")
}

/// Send raw bytes, half-close, and read the one answer line (empty when none).
fn exchange(sock: &Path, frame: &[u8]) -> String {
    let s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(T)).expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let frame = frame.to_vec();
    // A writer of its own: the server may answer (and stop reading) before we are done.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&frame);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut line = String::new();
    let _ = BufReader::new(&s).read_line(&mut line);
    let _ = writer.join();
    line
}

/// One status request over the socket; panics unless it is answered ok.
fn status_over_socket(sock: &Path) -> serde_json::Value {
    let line = exchange(sock, b"{\"v\":1,\"cmd\":\"status\"}\n");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["ok"], true, "{v}");
    v
}

fn two_services() -> Project {
    let p = Project::new(
        "version: \"1\"\nservices:\n  a:\n    command: \"exec sleep 1000\"\n  b:\n    command: \"exec sleep 1000\"\n",
    );
    p.start();
    p
}

#[test]
fn control_socket_refuses_malformed_and_oversized_frames() {
    let p = two_services();
    let sock = socket(&p);
    let sup = p.supervisor_pid().expect("pid") as u32;
    let cases: [(&[u8], &str); 5] = [
        (b"hello\n", "malformed request"),
        (b"{\"v\":1,\"cmd\":\"explode\"}\n", "malformed request"),
        (b"\xff\xfe\x00\n", "malformed request"),
        (
            b"{\"v\":2,\"cmd\":\"status\"}\n",
            "unsupported protocol version",
        ),
        (b"[1,2,3]\n", "malformed request"),
    ];
    for (frame, want) in cases {
        let answer = exchange(&sock, frame);
        assert!(
            answer.contains(want) && answer.contains("\"ok\":false"),
            "{frame:?} -> {answer}"
        );
    }
    // A request cut short by the end of the connection is refused; an empty one is ignored.
    let answer = exchange(&sock, b"{\"v\":1,");
    assert!(answer.contains("malformed request"), "{answer}");
    assert_eq!(exchange(&sock, b""), "");
    // Oversized: refused once the 64 KiB limit is passed, however much more is sent.
    let rss_before = rss_kib(sup);
    for size in [64 * 1024 + 1, 16 << 20] {
        let answer = exchange(&sock, &vec![b'x'; size]);
        assert!(answer.contains("larger than 65536 bytes"), "{answer}");
    }
    assert!(
        rss_kib(sup) < rss_before + 8 * 1024,
        "a 16 MiB frame must not be buffered: {} KiB -> {} KiB",
        rss_before,
        rss_kib(sup)
    );
    let st = status_over_socket(&sock);
    assert_eq!(st["data"]["services"].as_array().map(Vec::len), Some(2));
}

#[test]
fn control_socket_slow_clients_do_not_block_others() {
    let p = two_services();
    let sock = socket(&p);
    // Twenty clients that connect and say nothing, one that stops mid-line.
    let mut idle: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&sock).expect("connect"))
        .collect();
    let mut half = UnixStream::connect(&sock).expect("connect");
    half.write_all(b"{\"v\":1,\"cmd\":").expect("write");
    for _ in 0..5 {
        let t = Instant::now();
        status_over_socket(&sock);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "status took {:?} with slow clients connected",
            t.elapsed()
        );
    }
    // The stalled clients are still connected, and answered nothing.
    half.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    assert!(half.read(&mut buf).is_err(), "no answer to half a request");
    idle.clear();
}

#[test]
fn control_socket_serves_many_concurrent_clients() {
    let p = two_services();
    let sock = socket(&p);
    let sup = p.supervisor_pid().expect("pid") as u32;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let st = status_over_socket(&sock);
                    assert_eq!(st["data"]["services"].as_array().map(Vec::len), Some(2));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client failed");
    }
    // Every connection's thread is gone again.
    wait_until("connection threads ended", T, || {
        support::thread_names(sup)
            .iter()
            .all(|n| n != "control-conn")
    });
    assert_eq!(p.service("a")["state"], "running");
}

#[test]
fn control_socket_caps_its_connection_threads() {
    use systemg::control::server::MAX_CONNECTIONS;
    let p = two_services();
    let sock = socket(&p);
    let sup = p.supervisor_pid().expect("pid") as u32;
    let conn_threads = || {
        support::thread_names(sup)
            .iter()
            .filter(|n| *n == "control-conn")
            .count()
    };
    // Silent clients, more than the cap: each holds a connection until it closes.
    let held: Vec<UnixStream> = (0..MAX_CONNECTIONS + 20)
        .map(|_| UnixStream::connect(&sock).expect("connect"))
        .collect();
    wait_until("every place is taken", T, || {
        conn_threads() == MAX_CONNECTIONS
    });
    assert_eq!(conn_threads(), MAX_CONNECTIONS, "more threads than places");
    drop(held);
    // The waiting connections are served as places free up; a new client is answered.
    let st = status_over_socket(&sock);
    assert_eq!(st["data"]["services"].as_array().map(Vec::len), Some(2));
    wait_until("connection threads ended", T, || conn_threads() == 0);
    assert_eq!(p.service("a")["state"], "running");
}

// ----- idle -----

#[test]
fn idle_supervisor_does_not_wake_up() {
    let p = Project::new(&{
        let mut y = String::from("version: \"1\"\nservices:\n");
        for i in 0..10 {
            y += &format!("  s{i}:\n    command: \"exec sleep 1000\"\n");
        }
        y
    });
    // The default backend choice: its D-Bus probe must not leave a polling thread behind.
    p.start();
    let sup = p.supervisor_pid().expect("pid") as u32;
    let before = wakeups(sup);
    // An observation window, not a wait: nothing is due, so nothing may run.
    std::thread::sleep(Duration::from_millis(1500));
    let after = wakeups(sup);
    assert!(
        after - before <= 1,
        "an idle supervisor woke up {} times in 1.5 s: {}",
        after - before,
        wakeups_by_thread(sup)
    );
}

// ----- log flood -----

#[test]
fn log_flood_keeps_memory_bounded_status_responsive_and_disk_budget() {
    const MAX_SIZE: u64 = 256 * 1024;
    const MAX_FILES: u64 = 2;
    let p = Project::new(&format!(
        r#"version: "1"
logs:
  max_size: 256K
  max_files: {MAX_FILES}
services:
  flood:
    command: "timeout 5 yes 'flood flood flood flood flood flood flood flood flood flood'"
    restart_policy: never
  ticker:
    command: "while :; do echo tick; sleep 0.1; done"
  quiet:
    command: "exec sleep 1000"
"#
    ));
    p.start();
    let sup = p.supervisor_pid().expect("pid") as u32;
    let sock = socket(&p);
    let logs = p.state_dir().join("logs");
    let ticks = || {
        std::fs::read_to_string(logs.join("ticker.stdout.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let flood_pid = p.pid("flood");
    let mut max_rss = 0;
    let mut checks = 0;
    while alive(flood_pid) {
        max_rss = max_rss.max(rss_kib(sup));
        let t = Instant::now();
        let st = status_over_socket(&sock);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "status took {:?} during the flood",
            t.elapsed()
        );
        assert_eq!(st["data"]["services"].as_array().map(Vec::len), Some(3));
        // The ticker's lines keep arriving next to the flood.
        let seen = ticks();
        wait_until(
            "a new tick line during the flood",
            Duration::from_secs(5),
            || ticks() > seen,
        );
        checks += 1;
    }
    assert!(checks >= 2, "the flood ended before it was observed");
    assert!(
        max_rss < 64 * 1024,
        "supervisor RSS reached {max_rss} KiB during the flood"
    );
    wait_until("the flood is over", T, || {
        p.service("flood")["state"] != "running"
    });
    let used = size_of_files(&logs, "flood.stdout.log");
    let budget = MAX_SIZE * (MAX_FILES + 1) + 64 * 1024;
    assert!(
        used <= budget,
        "flood logs use {used} bytes, budget {budget}"
    );
    let files = std::fs::read_dir(&logs)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("flood.stdout.log")
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        files as u64,
        MAX_FILES + 1,
        "current file plus {MAX_FILES} rotated"
    );
    assert_eq!(p.service("quiet")["state"], "running");
}

// ----- full disk, read-only directories -----

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    println!("skipping {test}: mounting a tmpfs needs root");
    true
}

/// Stop the project's supervisor (and services) before a mount under it goes away.
fn stopper(p: &Project) -> impl FnOnce() + 'static {
    let mut cmd = p.cmd(&["stop"]);
    move || {
        let _ = run_bounded_cmd(&mut cmd);
    }
}

fn run_bounded_cmd(cmd: &mut std::process::Command) -> Option<std::process::ExitStatus> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

#[test]
fn full_disk_keeps_services_running_and_logging_recovers() {
    if skip_unless_root("full_disk_keeps_services_running_and_logging_recovers") {
        return;
    }
    let p = Project::new(
        r#"version: "1"
services:
  filler:
    command: "while :; do echo 0123456789012345678901234567890123456789; sleep 0.001; done"
  steady:
    command: "exec sleep 1000"
"#,
    );
    let disk = Tmpfs::mount(&p.state_dir(), "size=64k,mode=0700").before_unmount(stopper(&p));
    p.start();
    let fs_full =
        || nix::sys::statvfs::statvfs(&disk.target).is_ok_and(|s| s.blocks_available() == 0);
    wait_until("the disk is full", T, fs_full);
    let steady = p.pid("steady");
    let filler = p.pid("filler");
    // Everything keeps working: status, a restart (new FIFOs), the services themselves.
    assert_eq!(p.service("filler")["state"], "running");
    assert_ok(
        &p.sysg(&["restart", "--service", "steady"]),
        "restart on a full disk",
    );
    assert_ne!(p.pid("steady"), steady);
    assert!(alive(filler) && !alive(steady));
    // Space comes back: the log is written again.
    let log = disk.target.join("logs/filler.stdout.log");
    std::fs::remove_file(&log).expect("free the space");
    wait_until("filler's log is written again", T, || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
    });
    assert_eq!(p.pid("filler"), filler);
}

#[test]
fn full_disk_at_start_is_a_clear_error() {
    if skip_unless_root("full_disk_at_start_is_a_clear_error") {
        return;
    }
    let p = Project::new("version: \"1\"\nservices:\n  a:\n    command: \"exec sleep 1000\"\n");
    let disk = Tmpfs::mount(&p.state_dir(), "size=64k,mode=0700").before_unmount(stopper(&p));
    // Fill it.
    let mut f = std::fs::File::create(disk.target.join("fill")).expect("fill");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("No space left on device"),
        "the cause must be in the answer: {}",
        stderr(&out)
    );
}

#[test]
fn read_only_state_dir_is_a_clear_error() {
    let p = Project::new("version: \"1\"\nservices:\n  a:\n    command: \"exec sleep 1000\"\n");
    let _ro = if is_root() {
        Some(Tmpfs::mount(&p.state_dir(), "ro,mode=0700").before_unmount(stopper(&p)))
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(p.state_dir()).expect("state dir");
        std::fs::set_permissions(p.state_dir(), std::fs::Permissions::from_mode(0o500))
            .expect("chmod");
        None
    };
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&p.state_dir().display().to_string())
            && (err.contains("Read-only file system") || err.contains("Permission denied")),
        "the error names the directory and the cause: {err}"
    );
}

#[test]
fn log_dir_turning_read_only_keeps_services_running() {
    if skip_unless_root("log_dir_turning_read_only_keeps_services_running") {
        return;
    }
    let p = Project::new(
        "version: \"1\"\nservices:\n  ticker:\n    command: \"while :; do echo tick; sleep 0.05; done\"\n",
    );
    p.start();
    let logs = p.state_dir().join("logs");
    let log = logs.join("ticker.stdout.log");
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_until("ticks are logged", T, || lines() > 0);
    let ticker = p.pid("ticker");
    // A read-only file system now sits on the log directory (files already open stay usable,
    // as after a remount; every new open fails).
    let ro = Tmpfs::mount(&logs, "ro,mode=0700").before_unmount(stopper(&p));
    assert_ok(&p.sysg(&["status"]), "status with a read-only log dir");
    assert_ok(
        &p.sysg(&["restart", "--service", "ticker"]),
        "restart with a read-only log dir",
    );
    let ticker2 = p.pid("ticker");
    assert_ne!(ticker, ticker2);
    assert!(alive(ticker2));
    assert!(
        !log.exists(),
        "nothing could be written on the read-only mount"
    );
    // The directory comes back: the new instance's output reaches its log again.
    let out = std::process::Command::new("umount")
        .arg(&ro.target)
        .output()
        .expect("umount");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = lines();
    wait_until("logging resumes once the directory is writable", T, || {
        lines() > seen
    });
    assert_eq!(p.pid("ticker"), ticker2);
}

// ----- the process backend's own rules, without cgroups -----

mod backend_level {
    use super::*;
    use std::sync::mpsc::Receiver;

    use systemg::backend::process::{ProcessBackend, ProcessOptions};
    use systemg::backend::{Backend, BackendEvent};

    use systemg::spec::UnitSpec;

    fn backend(dir: &Path, use_cgroups: bool) -> (ProcessBackend, Receiver<BackendEvent>) {
        let mut options = ProcessOptions::default();
        options.use_cgroups = use_cgroups;
        process_backend(dir, options)
    }

    fn spec(project: &str, name: &str, argv: &[&str], cwd: &Path) -> UnitSpec {
        UnitSpec {
            cwd: Some(cwd.to_path_buf()),
            stop_timeout: Duration::from_secs(1),
            ..UnitSpec::new(project, name, argv.iter().map(|s| s.to_string()).collect())
        }
    }

    fn exited(rx: &Receiver<BackendEvent>, unit: &str) {
        next_exit(rx, unit, T);
    }

    /// Without a cgroup the unit is found by session, process group, marker and parentage;
    /// a process that leaves the session, clears its environment and is orphaned is out of
    /// reach (a documented limit of the fallback), so this tree has every other kind.
    #[test]
    fn fallback_stop_leaves_no_survivor_of_a_hostile_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = HOSTILE.replace(
            "( setsid sh -c 'echo $$ > pids/exec; exec env -i sleep 1004' & ) &",
            "( setsid sh -c 'echo $$ > pids/exec; exec sleep 1004' & ) &",
        );
        std::fs::write(dir.path().join("hostile.sh"), script).expect("script");
        let (mut b, rx) = backend(dir.path(), false);
        let project = format!("fallback{}", std::process::id());
        b.start(&spec(
            &project,
            "hostile",
            &["sh", "./hostile.sh"],
            dir.path(),
        ))
        .expect("start");
        let mut pids = Vec::new();
        wait_until("every hostile process wrote its pid", T, || {
            pids = HOSTILE_PIDS
                .iter()
                .filter_map(|n| read_pid(&dir.path().join("pids").join(n)))
                .collect();
            pids.len() == HOSTILE_PIDS.len()
        });
        // The stop sequence the core runs: the stop signal, then SIGKILL for what ignored it.
        b.signal("hostile", 15).expect("signal");
        b.kill("hostile").expect("kill");
        exited(&rx, "hostile");
        wait_until("zero survivors", T, || pids.iter().all(|&x| !alive(x)));
    }

    /// A supervisor killed between a spawn and the state write leaves an unrecorded service.
    /// Without cgroups, the next one must kill it before starting the unit again: never two.
    #[test]
    fn fallback_unrecorded_leftover_is_replaced_not_duplicated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = format!("leftover{}", std::process::id());
        let (mut first, _rx1) = backend(dir.path(), false);
        let old = first
            .start(&spec(&project, "web", &["sleep", "1000"], dir.path()))
            .expect("start");
        // The supervisor dies without a record: its backend goes, the unit keeps running.
        drop(first);
        let (mut second, _rx2) = backend(dir.path(), false);
        let new = second
            .start(&spec(&project, "web", &["sleep", "1000"], dir.path()))
            .expect("start again");
        wait_until("the unrecorded instance is gone", T, || !alive(old));
        assert!(alive(new));
        second.kill("web").expect("kill");
        wait_until("gone", T, || !alive(new));
    }

    #[test]
    fn same_project_name_in_two_homes_keeps_services_apart() {
        twins(true);
    }

    #[test]
    fn same_project_name_in_two_homes_keeps_services_apart_without_cgroups() {
        twins(false);
    }

    /// Two projects of the same name (two users, two HOMEs) under one parent cgroup: starting
    /// one must not take the other's unit cgroup (or marked processes) for leftovers and kill
    /// its service.
    fn twins(use_cgroups: bool) {
        let (d1, d2) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let (mut b1, _rx1) = backend(d1.path(), use_cgroups);
        let (mut b2, _rx2) = backend(d2.path(), use_cgroups);
        let project = format!("twin{}", std::process::id());
        let p1 = b1
            .start(&spec(&project, "web", &["sleep", "1000"], d1.path()))
            .expect("start 1");
        let p2 = b2
            .start(&spec(&project, "web", &["sleep", "1000"], d2.path()))
            .expect("start 2");
        assert!(
            alive(p1),
            "the first project's service was killed by the second's start"
        );
        assert!(alive(p2));
        let (r1, r2) = (b1.records(), b2.records());
        if r1[0].extra["kill_mode"] == "cgroup" {
            assert_ne!(r1[0].extra["cgroup"], r2[0].extra["cgroup"]);
        }
        b1.kill("web").expect("kill");
        b2.kill("web").expect("kill");
        wait_until("both gone", T, || !alive(p1) && !alive(p2));
    }
}
