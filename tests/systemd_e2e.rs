//! End-to-end: the real `sysg` binary with `--sys --backend systemd`, run inside a namespaced
//! systemd 252 (see tests/systemd/mod.rs). Every wait is a polled condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::Duration;

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn e2e_properties_journal_and_clean_stop() {
    let Some(ns) = boot_or_skip("e2e_properties_journal_and_clean_stop") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-e2e-",
        "e2e-props",
        r#"  web:
    command: "echo hello-from-web; exec sleep 1000"
    env:
      vars:
        MODE: test
    limits:
      nofile: 2048
    stop_signal: SIGINT
    stop_timeout: 4s
"#,
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let st = p.status();
    assert_eq!(st["backend"], "systemd", "{st}");
    let pid = p.pid("web");
    let unit = p.unit("web");
    assert_eq!(ns.show(&unit, "MainPID"), pid.to_string());
    assert_eq!(ns.show(&unit, "ActiveState"), "active");
    assert_eq!(ns.show(&unit, "LimitNOFILE"), "2048");
    assert_eq!(ns.show(&unit, "KillSignal"), "2");
    assert_eq!(ns.show(&unit, "TimeoutStopUSec"), "4s");
    assert_eq!(ns.show(&unit, "Restart"), "no");
    assert_eq!(ns.show(&unit, "Slice"), "sysg-e2e\\x2dprops.slice");
    // The environment reaches the service through a private file, not the world-readable
    // Environment= property (env files hold secrets; see docs/security.md).
    assert!(!ns.show(&unit, "Environment").contains("MODE=test"));
    let environ = ns.output(&["cat", &format!("/proc/{pid}/environ")]);
    assert!(environ.split('\0').any(|v| v == "MODE=test"), "{environ:?}");
    wait_until("web's output is in the journal", T, || {
        ns.output(&["journalctl", "-u", &unit, "-o", "cat", "--no-pager"])
            .contains("hello-from-web")
    });
    let logs = p.sysg(&["logs", "--service", "web"]);
    assert_ok(&logs, "logs");
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("hello-from-web"),
        "sysg logs reads the journal: {}",
        String::from_utf8_lossy(&logs.stdout)
    );

    // Inspect names the unit and reads its cgroup; logs --json reads the journal.
    let out = p.sysg(&["inspect", "web", "--json"]);
    assert_ok(&out, "inspect");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(v["unit_name"], unit.as_str(), "{v}");
    assert_eq!(v["metrics"]["source"], "cgroup", "{v}");
    assert!(
        v["metrics"]["cgroup"]
            .as_str()
            .is_some_and(|c| c.ends_with(&unit)),
        "{v}"
    );
    assert!(
        v["metrics"]["samples"][0]["memory_bytes"].as_u64() > Some(0),
        "{v}"
    );
    let out = p.sysg(&["logs", "--service", "web", "--json"]);
    assert_ok(&out, "logs --json");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["line"] == "hello-from-web")
        .unwrap_or_else(|| panic!("no JSON journal line: {text}"));
    assert_eq!(line["service"], "web");
    assert_eq!(line["stream"], "journal");
    // By time, through journalctl --since/--until: the line is within the last hour and at
    // its own stamp, not an hour ago and not in the future.
    let stamp = line["time"].as_str().expect("time").to_string();
    let by_time = |args: &[&str]| {
        let mut all = vec!["logs", "--service", "web", "--json"];
        all.extend_from_slice(args);
        let out = p.sysg(&all);
        assert_ok(&out, "logs by time");
        String::from_utf8_lossy(&out.stdout).contains("hello-from-web")
    };
    assert!(by_time(&["--since", "1h"]));
    assert!(by_time(&["--since", &stamp, "--until", "2099-01-01"]));
    assert!(!by_time(&["--until", "1h"]));
    assert!(!by_time(&["--since", "2099-01-01T00:00:00Z"]));

    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
    assert!(!ns.alive(pid), "web survived stop");
    assert_eq!(p.sysg(&["status"]).status.code(), Some(3));
}

#[test]
fn e2e_crash_is_restarted_per_policy() {
    let Some(ns) = boot_or_skip("e2e_crash_is_restarted_per_policy") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-e2e-",
        "e2e-crash",
        r#"  flaky:
    command: "echo run >> runs; exit 3"
    restart_policy: on-failure
    backoff: 50ms
    max_restarts: 2
"#,
    );
    let _ = p.sysg(&["start", "--daemonize"]);
    wait_until("flaky gives up", T, || {
        p.service("flaky")["state"] == "failed"
    });
    let s = p.service("flaky");
    assert_eq!(s["restarts"], 2, "{s}");
    assert_eq!(s["last_exit"]["kind"], "code", "{s}");
    assert_eq!(s["last_exit"]["value"], 3, "{s}");
    let runs = std::fs::read_to_string(p.dir().join("runs")).unwrap_or_default();
    assert_eq!(runs.lines().count(), 3, "first run plus two restarts");
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

#[test]
fn e2e_outside_stop_is_reported_and_dependents_follow() {
    let Some(ns) = boot_or_skip("e2e_outside_stop_is_reported_and_dependents_follow") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-e2e-",
        "e2e-dep",
        r#"  db:
    command: "exec sleep 1000"
    restart_policy: never
  web:
    command: "exec sleep 1001"
    restart_policy: never
    depends_on: [db]
"#,
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let db = p.pid("db");
    let web = p.pid("web");
    let out = ns.exec(&["systemctl", "stop", &p.unit("db")]);
    assert!(out.status.success(), "{out:?}");
    wait_until("db is seen as down", T, || p.service("db")["pid"].is_null());
    wait_until("web follows db down", T, || {
        p.service("web")["pid"].is_null() && !ns.alive(web)
    });
    assert!(!ns.alive(db));
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

#[test]
fn e2e_supervisor_crash_then_readoption() {
    let Some(ns) = boot_or_skip("e2e_supervisor_crash_then_readoption") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-e2e-",
        "e2e-adopt",
        r#"  keeper:
    command: "exec sleep 1000"
"#,
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let pid = p.pid("keeper");
    let unit = p.unit("keeper");

    // 1. With the state file: kill -9 the supervisor, start again, same MainPID.
    let sup = p.supervisor_pid().expect("supervisor pid file");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));
    assert_eq!(
        ns.show(&unit, "MainPID"),
        pid.to_string(),
        "the unit outlives the supervisor"
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start after crash");
    assert_eq!(p.pid("keeper"), pid, "re-adopted with the same MainPID");
    assert_eq!(p.service("keeper")["state"], "running");

    // 2. Without a state file: the unit is found by name.
    let sup = p.supervisor_pid().expect("supervisor pid file");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));
    let state = p.inner_path(&format!("/var/lib/systemg/{}/state.json", p.project));
    let _ = std::fs::remove_file(state);
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start without state");
    assert_eq!(p.pid("keeper"), pid, "adopted from ListUnitsByPatterns");

    // The adopted unit is still watched: an outside kill is noticed (and restarted per policy).
    ns.exec(&["kill", "-9", &pid.to_string()]);
    wait_until("the kill is noticed", T, || {
        let s = p.service("keeper");
        s["pid"].as_u64().is_some_and(|n| n as u32 != pid) || s["restarts"].as_u64() >= Some(1)
    });
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}
