//! `readiness: notify`, `start_timeout`, `watchdog`, `sysg reload` and `sysg kill` with the
//! process backend, against a real daemon speaking sd_notify (tests/fixtures/notify_daemon.py).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

fn daemon() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/notify_daemon.py")
        .display()
        .to_string()
}

fn project(body: &str) -> Project {
    let yaml = format!(
        "version: \"1\"\nservices:\n{}",
        body.replace("DAEMON", &daemon())
    );
    Project::new(&yaml)
}

#[test]
fn dependents_wait_for_ready_and_status_shows_the_status_text() {
    let p = project(
        r#"
  db:
    exec: ["python3", "DAEMON", "--ready-after", "1.5", "--status", "serving 3 clients", "--mark", "db.ready"]
    readiness: notify
  web:
    command: "date +%s.%N > web.started; exec sleep 1000"
    depends_on: [db]
"#,
    );
    let began = Instant::now();
    p.start();
    // start --daemonize answered only once db was ready and web had started.
    assert!(began.elapsed() >= Duration::from_millis(1500));
    let ready: f64 = std::fs::read_to_string(p.dir.join("db.ready"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let started: f64 = std::fs::read_to_string(p.dir.join("web.started"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(started >= ready, "web started before db's READY=1");
    let db = p.service("db");
    assert_eq!(db["notify"]["status"], "serving 3 clients", "{db}");
    assert_eq!(db["notify"]["ready"], true, "{db}");
    let out = p.sysg(&["status"]);
    assert!(
        stdout(&out).contains("serving 3 clients"),
        "{}",
        stdout(&out)
    );
    let out = p.sysg(&["inspect", "db"]);
    assert!(
        stdout(&out).contains("serving 3 clients"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn never_ready_fails_the_start_within_start_timeout() {
    let p = project(
        r#"
  db:
    exec: ["python3", "DAEMON", "--ready-after", "never"]
    readiness: notify
    start_timeout: 2s
    restart_policy: never
  web:
    command: "exec sleep 1000"
    depends_on: [db]
"#,
    );
    let began = Instant::now();
    let out = p.sysg(&["start", "--daemonize"]);
    let took = began.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(took >= Duration::from_secs(2) && took < T, "{took:?}");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("READY=1"),
        "the reason names readiness: {text}"
    );
    let db = p.service("db");
    assert_eq!(db["state"], "failed", "{db}");
    assert!(db["reason"].as_str().unwrap().contains("readiness"), "{db}");
    assert!(p.service("web")["pid"].is_null(), "web never started");
}

#[test]
fn a_missed_watchdog_aborts_and_restarts_the_service() {
    let p = project(
        r#"
  dog:
    exec: ["python3", "DAEMON"]
    readiness: notify
    watchdog: 1s
    backoff: 2s
"#,
    );
    p.start();
    let first = p.pid("dog");
    wait_until("the watchdog failure", T, || {
        let s = p.service("dog");
        s["state"] == "backoff"
            && s["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("watchdog"))
    });
    assert_eq!(p.service("dog")["last_exit"]["value"], 6, "SIGABRT");
    wait_until("a restart after the watchdog fired", T, || {
        let s = p.service("dog");
        s["restarts"].as_u64().unwrap_or(0) >= 1
            && s["pid"].as_u64().is_some_and(|x| x as u32 != first)
    });
    assert!(!alive(first));
}

/// Also: the service's `WATCHDOG_PID` is its own pid, as systemd sets it (sd_watchdog_enabled()
/// ignores a watchdog meant for another process).
#[test]
fn a_petted_watchdog_keeps_the_service_running() {
    let p = project(
        r#"
  dog:
    exec: ["python3", "DAEMON", "--pet", "--env", "dog.env"]
    readiness: notify
    watchdog: 1500ms
"#,
    );
    p.start();
    let pid = p.pid("dog");
    let env = std::fs::read_to_string(p.dir.join("dog.env")).unwrap();
    for line in [
        "WATCHDOG_USEC=1500000".to_string(),
        format!("WATCHDOG_PID={pid}"),
        // Only a service with `sockets:` gets LISTEN_PID.
        "LISTEN_PID_IS_ME=0".to_string(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
    }
    let until = Instant::now() + Duration::from_secs(3);
    wait_until(
        "3 s with the watchdog petted",
        Duration::from_secs(5),
        || {
            assert_eq!(p.pid("dog"), pid, "restarted although petted");
            Instant::now() >= until
        },
    );
    assert_eq!(p.service("dog")["restarts"], 0);
}

#[test]
fn watchdog_without_notify_is_a_config_error_with_its_position() {
    let p = project(
        r#"
  web:
    command: "sleep 1"
    watchdog: 10s
"#,
    );
    let out = p.sysg(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("systemg.yaml:6:15"), "{text}");
    assert!(text.contains("readiness: notify"), "{text}");
}

#[test]
fn reload_and_kill_keep_the_main_pid() {
    let p = project(
        r#"
  api:
    exec: ["python3", "DAEMON"]
    readiness: notify
    reload:
      signal: SIGHUP
  plain:
    command: "trap 'echo usr1 >> usr1.log' USR1; while :; do sleep 0.1; done"
"#,
    );
    p.start();
    let api = p.pid("api");
    let out = p.sysg(&["reload", "--service", "api"]);
    assert_ok(&out, "reload");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("reloads.log"))
            .unwrap()
            .trim(),
        api.to_string()
    );
    assert_eq!(p.pid("api"), api);
    // Without `reload:` the error names the field.
    let out = p.sysg(&["reload", "--service", "plain"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("reload"), "{}", stderr(&out));

    let plain = p.pid("plain");
    let out = p.sysg(&["kill", "--signal", "SIGUSR1", "--service", "plain"]);
    assert_ok(&out, "kill");
    wait_until("the trap ran", T, || p.dir.join("usr1.log").exists());
    assert_eq!(p.pid("plain"), plain);
    let out = p.sysg(&[
        "kill",
        "--signal",
        "USR1",
        "--service",
        "plain",
        "--main",
        "--json",
    ]);
    assert_ok(&out, "kill --main --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"][0]["name"], "plain", "{v}");
    assert_eq!(p.pid("plain"), plain);
}

#[test]
fn notify_flooding_leaves_the_supervisor_responsive() {
    let p = project(
        r#"
  flood:
    exec: ["python3", "DAEMON", "--flood"]
    readiness: notify
  calm:
    exec: ["python3", "DAEMON", "--ready-after", "0.5", "--status", "calm"]
    readiness: notify
    depends_on: [flood]
"#,
    );
    p.start();
    for _ in 0..10 {
        let began = Instant::now();
        let out = p.sysg(&["status", "--json"]);
        assert_ok(&out, "status");
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
    }
    assert_eq!(p.service("calm")["notify"]["status"], "calm");
    assert_eq!(p.service("flood")["state"], "running");
}

/// The notify socket hears only processes of the unit: an unrelated process that knows the
/// socket's address (here: this test) sends READY=1 and a STATUS= for a service that never
/// gets ready; neither counts, and the start still fails at its start_timeout.
#[test]
fn a_notification_from_outside_the_unit_is_ignored() {
    let p = project(
        r#"
  db:
    exec: ["python3", "DAEMON", "--ready-after", "never"]
    readiness: notify
    start_timeout: 4s
    restart_policy: never
"#,
    );
    let mut start = p.cmd(&["start", "--daemonize"]);
    start
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = start.spawn().unwrap();
    let mut pid = 0;
    wait_until("db runs", T, || {
        let s = p.status();
        let found = s["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "db"))
            .and_then(|s| s["pid"].as_u64());
        pid = found.unwrap_or(0) as u32;
        pid != 0
    });
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let socket = environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("NOTIFY_SOCKET="))
        .expect("NOTIFY_SOCKET in the service's environment")
        .to_string();
    let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
    for _ in 0..20 {
        if socket.starts_with('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&socket.as_bytes()[1..])
                .unwrap();
            tx.send_to_addr(b"READY=1\nSTATUS=spoofed", &addr).unwrap();
        } else {
            tx.send_to(b"READY=1\nSTATUS=spoofed", &socket).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let db = p.service("db");
    assert_eq!(db["state"], "failed", "{db}");
    assert!(db["reason"].as_str().unwrap().contains("readiness"), "{db}");
    assert_ne!(db["notify"]["status"], "spoofed", "{db}");
}

#[test]
fn a_reload_command_runs_with_the_service_identity_and_keeps_the_pid() {
    let p = project(
        r#"
  api:
    command: "exec sleep 1000"
    env:
      vars:
        GREETING: hello
    reload:
      command: "echo $GREETING $MAINPID $SYSG_SERVICE > reload.out"
"#,
    );
    p.start();
    let pid = p.pid("api");
    let out = p.sysg(&["reload", "--json"]);
    assert_ok(&out, "reload");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"][0]["action"], "command", "{v}");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("reload.out"))
            .unwrap()
            .trim(),
        format!("hello {pid} api")
    );
    assert_eq!(p.pid("api"), pid);
}

/// A rolling deployment of a notify service switches over only once the new instance sent
/// READY=1: until then the old instance is the service's process.
#[test]
fn a_rolling_deployment_switches_over_at_ready() {
    let p = project(
        r#"
  api:
    exec: ["python3", "DAEMON", "--ready-after", "2", "--mark", "api.ready"]
    readiness: notify
    deployment:
      strategy: rolling
      grace_period: 100ms
"#,
    );
    p.start();
    let old = p.pid("api");
    std::fs::remove_file(p.dir.join("api.ready")).unwrap();
    let mut restart = p.cmd(&["restart", "--service", "api"]);
    restart
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = restart.spawn().unwrap();
    // Until the new instance's READY=1, status keeps showing the old one.
    let mut seen_before_ready = 0;
    wait_until("the new instance's READY=1", T, || {
        if p.dir.join("api.ready").exists() {
            return true;
        }
        assert_eq!(p.pid("api"), old, "switched over before READY=1");
        seen_before_ready += 1;
        false
    });
    assert!(seen_before_ready > 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let new = p.pid("api");
    assert_ne!(new, old);
    wait_until("the old instance retired", T, || !alive(old));
}

/// Socket activation and readiness together: a notify service with `sockets:` gets both its
/// listening socket (fd 3, LISTEN_*) and NOTIFY_SOCKET/WATCHDOG_USEC, and its start is over at
/// READY=1.
#[test]
fn a_notify_service_with_sockets_gets_both() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let p = project(&format!(
        r#"
  api:
    exec: ["python3", "DAEMON", "--ready-after", "0.5", "--env", "api.env", "--pet"]
    readiness: notify
    watchdog: 3s
    sockets:
      - listen: "127.0.0.1:{port}"
        name: http
"#
    ));
    p.start();
    let env = std::fs::read_to_string(p.dir.join("api.env")).unwrap();
    for line in [
        "LISTEN_FDS=1".to_string(),
        "LISTEN_PID_IS_ME=1".to_string(),
        "LISTEN_FDNAMES=http".to_string(),
        format!("FD3_PORT={port}"),
        "NOTIFY_SOCKET_SET=1".to_string(),
        "WATCHDOG_USEC=3000000".to_string(),
        format!("WATCHDOG_PID={}", p.pid("api")),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
    }
    let api = p.service("api");
    assert_eq!(api["notify"]["ready"], true, "{api}");
    // The socket listens while the service runs.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}
