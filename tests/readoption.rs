//! Re-adoption on the process backend: after `kill -9` of the supervisor, `sysg start -d`
//! takes back every surviving service without restarting any, whatever the order of their
//! names against their dependencies (the core learns all survivors in one step). The systemd
//! counterpart is in systemd_admin.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use common::*;
use support::recorded_pids;

const T: Duration = Duration::from_secs(20);

/// A service that appends its pid to `runs/<name>` each time it starts, then sleeps.
fn service(name: &str, deps: &[&str]) -> String {
    let mut s = format!("  {name}:\n    command: \"echo $$ >> runs/{name}; exec sleep 1000\"\n");
    if !deps.is_empty() {
        s.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
    }
    s
}

/// Start, kill -9 the supervisor, start again: every service keeps its pid and ran once.
fn survives_a_supervisor_crash(services: &[(&str, &[&str])]) {
    let yaml: String = services.iter().map(|(n, d)| service(n, d)).collect();
    let p = Project::new(&format!("version: \"1\"\nservices:\n{yaml}"));
    std::fs::create_dir(p.dir.join("runs")).expect("runs dir");
    p.start();
    let before: Vec<u32> = services.iter().map(|(n, _)| p.pid(n)).collect();

    let sup = p.supervisor_pid().expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    wait_until("the supervisor is gone", T, || !alive(sup as u32));
    for &pid in &before {
        assert!(alive(pid), "service {pid} died with the supervisor");
    }

    // `start` returns once everything settled: a cascade-stop and restart would show here.
    p.start();
    for ((name, _), pid) in services.iter().zip(&before) {
        let s = p.service(name);
        assert_eq!(s["state"], "running", "{name}: {s}");
        assert_eq!(p.pid(name), *pid, "{name} was restarted on re-adoption");
        assert_eq!(
            recorded_pids(&p.dir.join("runs").join(name)),
            vec![*pid],
            "{name} started more than once"
        );
    }
    let log =
        std::fs::read_to_string(p.state_dir().join("logs/supervisor.log")).expect("supervisor.log");
    assert!(
        !log.contains("stopping: dependency"),
        "a dependent was cascade-stopped on re-adoption:\n{log}"
    );
}

#[test]
fn dependent_named_before_its_dependency_keeps_its_pid() {
    survives_a_supervisor_crash(&[("zdb", &[]), ("app", &["zdb"])]);
}

#[test]
fn dependent_named_after_its_dependency_keeps_its_pid() {
    survives_a_supervisor_crash(&[("adb", &[]), ("zapp", &["adb"])]);
}

#[test]
fn three_level_chain_against_name_order_keeps_its_pids() {
    survives_a_supervisor_crash(&[
        ("z-base", &[]),
        ("m-mid", &["z-base"]),
        ("a-top", &["m-mid"]),
    ]);
}

fn kill_supervisor(p: &Project) {
    let sup = p.supervisor_pid().expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    wait_until("the supervisor is gone", T, || !alive(sup as u32));
}

fn uptime(p: &Project, name: &str) -> f64 {
    p.service(name)["uptime_secs"].as_f64().unwrap_or(0.0)
}

/// Re-adoption says so (`adopted (running since …, pid N)`, in the start output, in
/// `status --json` and in the supervisor log); uptime is the process's own; counters go on
/// after a crash but a fresh start begins at zero, while `inspect` keeps the exit history.
#[test]
fn readoption_says_adopted_keeps_uptime_and_counters_belong_to_their_run() {
    // `flaky` fails twice (after its settle window), then stays up.
    let p = Project::new(
        r#"
version: "1"
services:
  steady:
    command: "exec sleep 1000"
  flaky:
    command: "n=$(cat runs/n 2>/dev/null || echo 0); echo $((n+1)) > runs/n; if [ $n -lt 2 ]; then sleep 0.4; exit 3; fi; exec sleep 1000"
    backoff: 100ms
"#,
    );
    std::fs::create_dir(p.dir.join("runs")).expect("runs dir");
    p.start();
    wait_until("flaky restarted twice and runs", T, || {
        let s = p.service("flaky");
        s["restarts"] == 2 && s["state"] == "running"
    });
    let steady = p.pid("steady");
    wait_until("steady has run a while", T, || uptime(&p, "steady") >= 1.5);
    let before = uptime(&p, "steady");

    kill_supervisor(&p);
    let out = p.sysg(&["start", "--daemonize"]);
    assert_ok(&out, "start after the crash");
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("steady: "))
        .unwrap_or_else(|| panic!("no progress line for steady: {text}"));
    assert!(
        line.starts_with("steady: adopted (running since ")
            && line.ends_with(&format!(", pid {steady})")),
        "{text}"
    );
    assert!(!text.contains("steady: started"), "{text}");
    let s = p.service("steady");
    assert_eq!(s["adopted"], true, "{s}");
    assert!(uptime(&p, "steady") >= before, "uptime restarted: {s}");
    let f = p.service("flaky");
    assert_eq!(f["restarts"], 2, "the run goes on after a crash: {f}");
    let log =
        std::fs::read_to_string(p.state_dir().join("logs/supervisor.log")).expect("supervisor.log");
    assert!(
        log.contains("adopted (running since ") && log.contains(&format!("pid {steady})")),
        "{log}"
    );

    // A clean stop ends the run: the next start counts from zero.
    assert_ok(&p.sysg(&["stop"]), "stop");
    p.start();
    let f = p.service("flaky");
    assert_eq!(f["restarts"], 0, "{f}");
    assert!(f["last_exit"].is_null(), "{f}");
    assert_eq!(p.service("steady")["adopted"], false);
    let out = p.sysg(&["inspect", "flaky", "--json"]);
    assert_ok(&out, "inspect");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    let codes: Vec<&serde_json::Value> = v["exits"]
        .as_array()
        .expect("exits")
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert!(
        codes
            .iter()
            .filter(|c| **c == &serde_json::json!({"kind": "code", "value": 3}))
            .count()
            >= 2,
        "inspect keeps the earlier run's exits: {v}"
    );
    assert_ok(&p.sysg(&["stop"]), "stop");
}
