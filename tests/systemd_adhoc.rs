//! `sysg run` on the systemd backend: an ad-hoc unit is a transient unit like any service.
//! Runs the real binary with `--sys --backend systemd` inside a namespaced systemd
//! (tests/systemd/mod.rs); every wait is a polled condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(20);

fn sysg(ns: &NsSystemd, dir: &Path, args: &[&str]) -> Output {
    sysg_in(ns, Some(dir), None, args)
}

fn unit_status(ns: &NsSystemd, dir: &Path, name: &str) -> Option<Value> {
    let out = sysg(ns, dir, &["--project", "adhoc", "status", "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).ok()?;
    find_service(&st, name)
}

#[test]
fn adhoc_units_are_transient_units_with_wait_status() {
    let Some(ns) = boot_or_skip("adhoc_units_are_transient_units_with_wait_status") else {
        return;
    };
    // /tmp is shared with the namespace; no config file in it.
    let dir = tempfile::Builder::new()
        .prefix("sysg-adhoc-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path();
    let unit = systemg::backend::systemd::naming::unit_name("adhoc", "web");

    let out = sysg(
        &ns,
        d,
        &[
            "run",
            "--name",
            "web",
            "--env",
            "MODE=adhoc",
            "--",
            "sh",
            "-c",
            "echo hello-adhoc; exec sleep 1000",
        ],
    );
    assert_ok(&out, "run");
    let pid = unit_status(&ns, d, "web").expect("web listed")["pid"]
        .as_u64()
        .expect("pid");
    assert_eq!(ns.show(&unit, "ActiveState"), "active");
    assert_eq!(ns.show(&unit, "MainPID"), pid.to_string());
    // The environment reaches the process through a private file, not Environment=.
    let environ = ns.output(&["cat", &format!("/proc/{pid}/environ")]);
    assert!(
        environ.split('\0').any(|v| v == "MODE=adhoc"),
        "{environ:?}"
    );
    assert_eq!(ns.show(&unit, "WorkingDirectory"), d.display().to_string());
    wait_until("the output is in the journal", T, || {
        text(&sysg(&ns, d, &["--project", "adhoc", "logs", "--service", "web"]).stdout)
            .contains("hello-adhoc")
    });

    // --wait: the command's exit code, 128+N for a signal; the unit is forgotten.
    let code = |args: &[&str]| {
        let mut full = vec!["run", "--wait", "--"];
        full.extend_from_slice(args);
        sysg(&ns, d, &full).status.code()
    };
    assert_eq!(code(&["sh", "-c", "exit 5"]), Some(5));
    // `kill 0` (the unit's own process group) rather than `$$`: systemd 252 expands `$`
    // in ExecStart itself.
    assert_eq!(code(&["sh", "-c", "kill -TERM 0"]), Some(128 + 15));
    assert!(unit_status(&ns, d, "sh").is_none());

    // Stop by name: the transient unit goes away and the name is forgotten.
    assert_ok(
        &sysg(&ns, d, &["--project", "adhoc", "stop", "--service", "web"]),
        "stop web",
    );
    wait_until("the unit is gone", T, || {
        ns.show(&unit, "ActiveState") != "active"
    });
    assert!(!ns.alive(pid as u32));
    assert!(unit_status(&ns, d, "web").is_none());

    assert_ok(&sysg(&ns, d, &["--project", "adhoc", "stop"]), "stop all");
    assert_eq!(
        sysg(&ns, d, &["--project", "adhoc", "status"])
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn run_wait_streams_the_journal_and_keeps_it_for_logs() {
    let Some(ns) = boot_or_skip("run_wait_streams_the_journal_and_keeps_it_for_logs") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("sysg-adhoc-wait-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path();
    // The harness's manager logs to its console; a real one logs unit ends to the journal,
    // which is how the end of the output is known.
    for (verb, value) in [("log-target", "journal"), ("log-level", "info")] {
        let set = ns.exec(&["systemctl", verb, value]);
        assert!(set.status.success(), "systemctl {verb} {value}: {set:?}");
    }
    // No `$` in the command: systemd 252 expands it in ExecStart itself.
    let out = sysg(
        &ns,
        d,
        &[
            "run",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo first; seq 1 3000; echo oops >&2; echo last; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    // The journal keeps stdout and stderr as one stream: every line, in order, on stdout,
    // also those journald takes in after the manager's entry that the unit failed.
    let want: String = std::iter::once("first".to_string())
        .chain((1..=3000).map(|i| i.to_string()))
        .chain(["oops".to_string(), "last".to_string()])
        .map(|l| l + "\n")
        .collect();
    assert_eq!(
        text(&out.stdout),
        want,
        "every line, in order, nothing else"
    );
    // The supervisor it started is gone; the output stays readable.
    assert_eq!(
        sysg(&ns, d, &["--project", "adhoc", "status"])
            .status
            .code(),
        Some(3)
    );
    let logs = sysg(
        &ns,
        d,
        &["--project", "adhoc", "logs", "-s", "sh", "-n", "5"],
    );
    assert_ok(&logs, "logs -s sh");
    assert!(
        text(&logs.stdout).contains("last"),
        "{}",
        text(&logs.stdout)
    );
}
