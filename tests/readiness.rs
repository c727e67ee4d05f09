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

#[test]
fn a_petted_watchdog_keeps_the_service_running() {
    let p = project(
        r#"
  dog:
    exec: ["python3", "DAEMON", "--pet"]
    readiness: notify
    watchdog: 1500ms
"#,
    );
    p.start();
    let pid = p.pid("dog");
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
