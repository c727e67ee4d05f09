//! `readiness: notify`, `start_timeout`, `watchdog`, `sysg reload` and `sysg kill` with the
//! systemd backend, in a namespaced systemd 252 (tests/systemd/mod.rs), against the sd_notify
//! daemon of tests/fixtures/notify_daemon.py.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use systemd::*;

const T: Duration = Duration::from_secs(30);

fn daemon() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/notify_daemon.py")
        .display()
        .to_string()
}

fn services(yaml: &str) -> String {
    yaml.replace("DAEMON", &daemon())
}

#[test]
fn notify_dependents_wait_for_ready_and_status_text_is_read_back() {
    let Some(ns) = boot_or_skip("notify_dependents_wait_for_ready_and_status_text_is_read_back")
    else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-dep",
        &services(
            r#"  db:
    exec: ["python3", "DAEMON", "--ready-after", "1.5", "--status", "serving 3 clients", "--mark", "db.ready"]
    readiness: notify
    start_timeout: 20s
  web:
    command: "date +%s.%N > web.started; exec sleep 1000"
    depends_on: [db]
"#,
        ),
    );
    let began = Instant::now();
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    assert!(began.elapsed() >= Duration::from_millis(1500));
    let unit = p.unit("db");
    assert_eq!(ns.show(&unit, "Type"), "notify");
    assert_eq!(ns.show(&unit, "NotifyAccess"), "all");
    assert_eq!(ns.show(&unit, "TimeoutStartUSec"), "20s");
    assert_eq!(ns.show(&unit, "StatusText"), "serving 3 clients");
    let read = |f: &str| -> f64 {
        std::fs::read_to_string(p.dir().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        read("web.started") >= read("db.ready"),
        "web started before READY=1"
    );
    wait_until("StatusText in sysg status", T, || {
        p.service("db")["notify"]["status"] == "serving 3 clients"
    });
    let out = p.sysg(&["status"]);
    assert!(text(&out.stdout).contains("serving 3 clients"));
}

#[test]
fn notify_never_ready_fails_the_start_within_start_timeout() {
    let Some(ns) = boot_or_skip("notify_never_ready_fails_the_start_within_start_timeout") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-never",
        &services(
            r#"  db:
    exec: ["python3", "DAEMON", "--ready-after", "never"]
    readiness: notify
    start_timeout: 2s
    restart_policy: never
"#,
        ),
    );
    let began = Instant::now();
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(began.elapsed() < T);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("READY=1"), "{all}");
    let db = p.service("db");
    assert_eq!(db["state"], "failed", "{db}");
    assert!(db["reason"].as_str().unwrap().contains("readiness"), "{db}");
}

#[test]
fn notify_watchdog_kills_and_restarts_on_systemd() {
    let Some(ns) = boot_or_skip("notify_watchdog_kills_and_restarts_on_systemd") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-dog",
        &services(
            r#"  dog:
    exec: ["python3", "DAEMON"]
    readiness: notify
    watchdog: 1s
    backoff: 2s
"#,
        ),
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let unit = p.unit("dog");
    assert_eq!(ns.show(&unit, "WatchdogUSec"), "1s");
    let first = p.pid("dog");
    // Recorded as a watchdog failure (systemd's Result=watchdog, read back), then restarted.
    wait_until("the watchdog failure", T, || {
        let s = p.service("dog");
        s["state"] == "backoff"
            && s["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("watchdog"))
    });
    wait_until("a restart after the watchdog fired", T, || {
        let s = p.service("dog");
        s["restarts"].as_u64().unwrap_or(0) >= 1
            && s["pid"].as_u64().is_some_and(|x| x as u32 != first)
    });
    assert_eq!(p.service("dog")["last_exit"]["value"], 6, "SIGABRT");
}

#[test]
fn reload_and_kill_keep_the_main_pid_on_systemd() {
    let Some(ns) = boot_or_skip("reload_and_kill_keep_the_main_pid_on_systemd") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-reload",
        &services(
            r#"  api:
    exec: ["python3", "DAEMON"]
    readiness: notify
    reload:
      signal: SIGHUP
"#,
        ),
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let pid = p.pid("api");
    assert_ok(&p.sysg(&["reload", "--service", "api"]), "reload");
    let log = std::fs::read_to_string(p.dir().join("reloads.log")).unwrap();
    assert_eq!(log.trim(), pid.to_string());
    assert_eq!(p.pid("api"), pid);
    assert_ok(
        &p.sysg(&["kill", "--signal", "SIGHUP", "--service", "api", "--main"]),
        "kill --main",
    );
    wait_until("the second reload", T, || {
        std::fs::read_to_string(p.dir().join("reloads.log"))
            .unwrap_or_default()
            .lines()
            .count()
            == 2
    });
    assert_eq!(p.pid("api"), pid);
    assert_eq!(ns.show(&p.unit("api"), "MainPID"), pid.to_string());
}

/// A `reload: {command}` of a notify service runs as a helper unit built from the service's
/// properties, but not as a notify unit (`Type=exec`, no `NOTIFY_SOCKET`): it is a one-off
/// that never sends READY=1.
#[test]
fn a_reload_command_of_a_notify_service_runs_as_a_helper_unit_on_systemd() {
    let Some(ns) =
        boot_or_skip("a_reload_command_of_a_notify_service_runs_as_a_helper_unit_on_systemd")
    else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-rcmd",
        &services(
            r#"  api:
    exec: ["python3", "DAEMON"]
    readiness: notify
    start_timeout: 20s
    reload:
      command: "cat /proc/self/cgroup > reload.cgroup; echo ${NOTIFY_SOCKET:-none} > reload.env"
"#,
        ),
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let pid = p.pid("api");
    let started = Instant::now();
    assert_ok(&p.sysg(&["reload", "--service", "api"]), "reload");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the reload command waited for a READY=1 ({:?})",
        started.elapsed()
    );
    let cg = std::fs::read_to_string(p.dir().join("reload.cgroup")).unwrap();
    let cg = cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default();
    assert!(
        cg.contains("-api.reload.") && cg.ends_with(".service"),
        "not a helper unit of api: {cg}"
    );
    // The helper is no notify unit: systemd gave it no NOTIFY_SOCKET of its own.
    let env = std::fs::read_to_string(p.dir().join("reload.env")).unwrap();
    assert_eq!(env.trim(), "none");
    assert_eq!(p.pid("api"), pid);
}

/// While a notify service is getting ready the supervisor keeps answering: its start does not
/// hold the event loop until READY=1.
#[test]
fn the_supervisor_answers_while_a_notify_service_gets_ready() {
    let Some(ns) = boot_or_skip("the_supervisor_answers_while_a_notify_service_gets_ready") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-slow",
        &services(
            r#"  db:
    exec: ["python3", "DAEMON", "--ready-after", "6", "--status", "up"]
    readiness: notify
"#,
        ),
    );
    let bin = env!("CARGO_BIN_EXE_sysg");
    let dir = p.dir().display().to_string();
    let cfg = p.config.display().to_string();
    let start = ns
        .command(&[
            "env",
            "-C",
            &dir,
            "NO_COLOR=1",
            bin,
            "--sys",
            "--backend",
            "systemd",
            "-c",
            &cfg,
            "start",
            "--daemonize",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    wait_until("db running, waiting for READY=1", T, || {
        let s = p.sysg(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap_or_default();
        find_service(&v, "db")
            .is_some_and(|d| d["state"] == "running" && d["notify"]["ready"] == false)
    });
    let asked = Instant::now();
    let out = p.sysg(&["status"]);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        text(&out.stdout).contains("waiting for READY=1"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "status answered only after READY=1"
    );
    reap(start, T);
    wait_until("db ready", T, || p.service("db")["notify"]["ready"] == true);
}

/// Socket activation and readiness together on systemd: the socket unit hands fd 3 to a
/// `Type=notify` service, which also gets NOTIFY_SOCKET/WATCHDOG_USEC; the start is over at
/// READY=1 and the socket is checked once the service has its main process.
#[test]
fn a_notify_service_with_sockets_gets_both_on_systemd() {
    let Some(ns) = boot_or_skip("a_notify_service_with_sockets_gets_both_on_systemd") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let p = SysProject::new(
        &ns,
        "sysg-ready-",
        "ready-sock",
        &services(&format!(
            r#"  api:
    exec: ["python3", "DAEMON", "--ready-after", "0.5", "--env", "api.env", "--pet"]
    readiness: notify
    watchdog: 3s
    sockets:
      - listen: "127.0.0.1:{port}"
        name: http
"#
        )),
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    wait_until("api's READY=1", T, || {
        p.service("api")["notify"]["ready"] == true
    });
    let env = std::fs::read_to_string(p.dir().join("api.env")).unwrap();
    for line in [
        "LISTEN_FDS=1".to_string(),
        "LISTEN_PID_IS_ME=1".to_string(),
        "LISTEN_FDNAMES=http".to_string(),
        format!("FD3_PORT={port}"),
        "NOTIFY_SOCKET_SET=1".to_string(),
        "WATCHDOG_USEC=3000000".to_string(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
    }
}
