//! Cron jobs run by the real `sysg` binary with the process backend: runs, skips, failures and
//! history across supervisor restarts. Every wait is a polled condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A job that records its own start and end (with its pid and a nanosecond clock) by appending
/// single short lines, which `O_APPEND` keeps whole even if two runs overlapped.
const RECORDING_JOB: &str =
    r#"echo "s $$ $(date +%s%N)" >> runs.log; sleep 2.5; echo "e $$ $(date +%s%N)" >> runs.log"#;

/// The history of a job from `status --json`.
fn history(p: &Project, job: &str) -> Vec<Value> {
    p.service(job)["cron"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn count(runs: &[Value], result: &str) -> usize {
    runs.iter().filter(|r| r["result"] == result).count()
}

/// `(kind, pid, nanos)` lines of runs.log.
fn marks(p: &Project) -> Vec<(String, u32, u128)> {
    std::fs::read_to_string(p.dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn per_second_jobs_run_repeatedly_and_never_overlap() {
    let p = Project::new(&format!(
        r#"
version: "1"
services:
  slow:
    command: '{RECORDING_JOB}'
    cron: {{expression: "* * * * * *"}}
  quick:
    command: "true"
    cron: {{expression: "*/1 * * * * *", timezone: UTC}}
"#
    ));
    p.start();
    assert_eq!(p.service("quick")["cron"]["armed"], true);
    wait_until(
        "two whole runs of the slow job and a third start",
        T,
        || {
            let m = marks(&p);
            m.iter().filter(|x| x.0 == "e").count() >= 2
                && m.iter().filter(|x| x.0 == "s").count() >= 3
        },
    );
    // Starts and ends strictly alternate, each end belongs to the start before it, and no run
    // starts before the previous one ended.
    let m = marks(&p);
    for (i, w) in m.chunks(2).enumerate() {
        assert_eq!(w[0].0, "s", "line {} of runs.log: {m:?}", 2 * i);
        if let Some(end) = w.get(1) {
            assert_eq!(end.0, "e", "{m:?}");
            assert_eq!(end.1, w[0].1, "an end from another run: {m:?}");
        }
    }
    for pair in m.windows(2) {
        assert!(pair[0].2 <= pair[1].2, "out of order: {m:?}");
    }
    // The runs due while one was going were skipped, and recorded as such.
    let slow = history(&p, "slow");
    assert!(count(&slow, "skipped") >= 2, "{slow:?}");
    let skip = slow
        .iter()
        .find(|r| r["result"] == "skipped")
        .cloned()
        .unwrap_or_default();
    assert_eq!(skip["skipped"], true);
    assert_eq!(skip["started"], Value::Null);
    assert_eq!(skip["note"], "the previous run is still running");
    assert!(count(&slow, "success") >= 2, "{slow:?}");
    assert_eq!(count(&slow, "failed"), 0, "{slow:?}");

    // The quick job ran every second, each run a success however short.
    wait_until("four quick runs", T, || {
        count(&history(&p, "quick"), "success") >= 4
    });
    let quick = history(&p, "quick");
    assert_eq!(count(&quick, "failed"), 0, "{quick:?}");
    assert_eq!(count(&quick, "skipped"), 0, "{quick:?}");
    let scheduled: Vec<&str> = quick
        .iter()
        .filter_map(|r| r["scheduled"].as_str())
        .collect();
    for s in &scheduled {
        assert!(s.ends_with(".000Z"), "runs are due on whole seconds: {s}");
    }
    let svc = p.service("quick");
    assert_eq!(svc["restarts"], 0);
    assert!(
        matches!(svc["state"].as_str(), Some("scheduled" | "running")),
        "{svc}"
    );
    // The human table shows the next run and the last result.
    let out = p.sysg(&["status"]);
    assert_ok(&out, "status");
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("quick"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("next ") && line.contains("last: "), "{line}");
}

#[test]
fn a_failing_job_records_its_exit_status() {
    let p = Project::new(
        r#"
version: "1"
services:
  bad:
    command: "echo trying; exit 3"
    cron: {expression: "* * * * * *", timezone: Europe/Berlin}
"#,
    );
    p.start();
    wait_until("a failed run", T, || {
        count(&history(&p, "bad"), "failed") >= 1
    });
    let svc = p.service("bad");
    let last = history(&p, "bad")
        .into_iter()
        .find(|r| r["result"] == "failed")
        .unwrap_or_default();
    assert_eq!(
        last["status"],
        serde_json::json!({"kind": "code", "value": 3})
    );
    assert_eq!(last["skipped"], false);
    assert!(
        last["ended"].is_string() && last["started"].is_string(),
        "{last}"
    );
    // A failed run is not restarted and leaves the schedule armed.
    assert_eq!(svc["restarts"], 0);
    assert_eq!(svc["cron"]["timezone"], "Europe/Berlin");
    assert_eq!(svc["cron"]["armed"], true);

    let out = p.sysg(&["inspect", "bad", "--json"]);
    assert_ok(&out, "inspect --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect --json is JSON");
    let runs = v["status"]["cron"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        runs.iter()
            .any(|r| r["status"] == serde_json::json!({"kind": "code", "value": 3})),
        "{v}"
    );
    let out = p.sysg(&["inspect", "bad"]);
    assert_ok(&out, "inspect");
    let text = stdout(&out);
    assert!(
        text.contains("schedule:  * * * * * * (Europe/Berlin)"),
        "{text}"
    );
    assert!(text.contains("exit 3"), "{text}");
}

#[test]
fn history_survives_supervisor_restarts() {
    let p = Project::new(
        r#"
version: "1"
services:
  job:
    command: "echo ran >> ran.log"
    cron: {expression: "* * * * * *"}
"#,
    );
    p.start();
    wait_until("two runs", T, || count(&history(&p, "job"), "success") >= 2);
    let first = history(&p, "job")[0]["scheduled"].clone();

    // A crash of the supervisor: the history written while it ran is still there.
    let sup = p.supervisor_pid().expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the supervisor");
    wait_until("the supervisor is gone", T, || !alive(sup as u32));
    let offline = p.status();
    assert_eq!(offline["supervisor_pid"], Value::Null);
    let saved = history(&p, "job");
    assert!(saved.iter().any(|r| r["scheduled"] == first), "{saved:?}");

    // The newest saved run is the last one the ring of 10 would drop.
    let newest = saved
        .last()
        .map(|r| r["scheduled"].clone())
        .unwrap_or_default();
    let known: Vec<Value> = saved.iter().map(|r| r["scheduled"].clone()).collect();
    p.start();
    wait_until("a run of the new supervisor", T, || {
        history(&p, "job")
            .iter()
            .any(|r| !known.contains(&r["scheduled"]) && r["result"] == "success")
    });
    let now = history(&p, "job");
    assert!(now.iter().any(|r| r["scheduled"] == newest), "{now:?}");

    // A clean stop and start keep it too.
    assert_ok(&p.sysg(&["stop"]), "stop");
    let stopped = history(&p, "job");
    assert!(!stopped.is_empty());
    p.start();
    let again = history(&p, "job");
    let newest = stopped
        .last()
        .map(|r| r["scheduled"].clone())
        .unwrap_or_default();
    assert!(again.iter().any(|r| r["scheduled"] == newest), "{again:?}");
}

#[test]
fn stop_and_start_of_one_job_disarm_and_arm_it() {
    let p = Project::new(
        r#"
version: "1"
services:
  a:
    command: "echo a >> a.log"
    cron: {expression: "* * * * * *"}
  clock:
    command: "echo c >> clock.log"
    cron: {expression: "* * * * * *"}
"#,
    );
    p.start();
    let lines = |f: &str| {
        std::fs::read_to_string(p.dir.join(f))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_until("a ran", T, || lines("a.log") >= 1);
    assert_ok(&p.sysg(&["stop", "--service", "a"]), "stop --service a");
    let a = p.service("a");
    assert_eq!(a["state"], "stopped");
    assert_eq!(a["cron"]["armed"], false);
    assert_eq!(a["cron"]["next_run"], Value::Null);
    let ran = lines("a.log");
    // The other job keeps time: three more of its runs and none of a.
    let c = lines("clock.log");
    wait_until("three more clock runs", T, || lines("clock.log") >= c + 3);
    assert_eq!(lines("a.log"), ran, "a stopped job ran");

    assert_ok(&p.sysg(&["start", "--service", "a"]), "start --service a");
    assert_eq!(p.service("a")["cron"]["armed"], true);
    wait_until("a runs again", T, || lines("a.log") > ran);

    // A run by request.
    let before = count(&history(&p, "a"), "success");
    assert_ok(
        &p.sysg(&["restart", "--service", "a"]),
        "restart --service a",
    );
    wait_until("the requested run", T, || {
        history(&p, "a")
            .iter()
            .any(|r| r["note"] == "run by request" && r["result"] == "success")
    });
    assert!(count(&history(&p, "a"), "success") > before);
}
