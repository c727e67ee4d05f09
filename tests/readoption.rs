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
