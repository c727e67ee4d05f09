//! Cron jobs on the systemd backend, end to end: the real `sysg --sys --backend systemd` inside
//! a namespaced systemd 252 (tests/systemd/mod.rs). A job whose expression maps to `OnCalendar=`
//! is a transient `.timer` + `.service`; the others are scheduled by the supervisor; history
//! and skips look the same either way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::Duration;

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(30);

fn count(runs: &[Value], result: &str) -> usize {
    runs.iter().filter(|r| r["result"] == result).count()
}

#[test]
fn e2e_cron_timers_fire_and_history_shows_the_runs() {
    let Some(ns) = boot_or_skip("e2e_cron_timers_fire_and_history_shows_the_runs") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-cron-",
        "e2e-cron",
        r#"  tick:
    command: "echo tick"
    cron: {expression: "*/2 * * * * *", timezone: UTC}
  bad:
    command: "exit 3"
    cron: {expression: "* * * * * *"}
  slow:
    command: 'echo "s $$" >> runs.log; sleep 2.5; echo "e $$" >> runs.log'
    cron: {expression: "* * * * * *"}
  vixie:
    command: "true"
    cron: {expression: "* * * 1-31 * MON"}
"#,
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");

    // The timers exist under their names, with the translated calendar.
    let timers = ns.output(&["systemctl", "list-timers", "--all", "--no-pager"]);
    for job in ["tick", "bad", "slow"] {
        assert!(
            timers.contains(&p.timer(job)),
            "{job} has no timer:\n{timers}"
        );
    }
    let calendar = ns.show(&p.timer("tick"), "TimersCalendar");
    assert!(
        calendar.starts_with("{ OnCalendar=*-*-* *:*:00/2 UTC ;"),
        "{calendar}"
    );
    assert_eq!(ns.show(&p.timer("tick"), "AccuracyUSec"), "1s");
    // Day-of-month OR day-of-week has no OnCalendar form: no timer, the supervisor runs it.
    assert!(!timers.contains("vixie"), "{timers}");
    assert_eq!(p.service("tick")["cron"]["driver"], "systemd_timer");
    assert_eq!(p.service("vixie")["cron"]["driver"], "supervisor");

    // The timer fires and each run is in the history, judged by its exit status.
    wait_until("two timer runs of tick", T, || {
        count(&p.history("tick"), "success") >= 2
    });
    let tick = p.history("tick");
    for r in tick.iter().filter(|r| r["result"] == "success") {
        let s = r["scheduled"].as_str().unwrap_or_default();
        assert!(s.ends_with(".000Z"), "a scheduled whole second: {r}");
        assert!(r["pid"].as_u64().is_some_and(|p| p > 0), "{r}");
    }
    wait_until("a failed run of bad", T, || {
        count(&p.history("bad"), "failed") >= 1
    });
    let bad = p
        .history("bad")
        .into_iter()
        .find(|r| r["result"] == "failed")
        .unwrap_or_default();
    assert_eq!(
        bad["status"],
        serde_json::json!({"kind": "code", "value": 3})
    );
    wait_until("vixie ran", T, || {
        count(&p.history("vixie"), "success") >= 1
    });

    // Overlap: skipped and recorded, never two runs at once (the timer would otherwise start
    // the next run as soon as the previous one ends).
    wait_until("two whole slow runs", T, || {
        let log = std::fs::read_to_string(p.dir.path().join("runs.log")).unwrap_or_default();
        log.lines().filter(|l| l.starts_with("e ")).count() >= 2
    });
    let log = std::fs::read_to_string(p.dir.path().join("runs.log")).unwrap_or_default();
    let marks: Vec<&str> = log.lines().collect();
    for (i, pair) in marks.chunks(2).enumerate() {
        assert!(pair[0].starts_with("s "), "line {}: {marks:?}", 2 * i);
        if let Some(end) = pair.get(1) {
            assert_eq!(end.get(2..), pair[0].get(2..), "{marks:?}");
        }
    }
    let slow = p.history("slow");
    assert!(count(&slow, "skipped") >= 1, "{slow:?}");
    assert_eq!(count(&slow, "failed"), 0, "{slow:?}");

    // A run by request goes through the timer's service.
    assert_ok(
        &p.sysg(&["restart", "--service", "tick"]),
        "restart --service tick",
    );
    wait_until("the requested run", T, || {
        p.history("tick")
            .iter()
            .any(|r| r["note"] == "run by request" && r["result"] == "success")
    });

    // The supervisor crashes: the timers outlive it; a new supervisor takes them over and
    // the history goes on where it was.
    let before = p.history("tick");
    let sup = p.supervisor_pid().expect("supervisor pid");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));
    assert!(ns
        .output(&["systemctl", "list-timers", "--all", "--no-pager"])
        .contains(&p.timer("tick")));
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start after the crash");
    wait_until("a run under the new supervisor", T, || {
        let now = p.history("tick");
        now.iter().any(|r| r["scheduled"] == before[0]["scheduled"])
            && now.last().map(|r| &r["scheduled"]) != before.last().map(|r| &r["scheduled"])
            && count(&now, "success") > count(&before, "success")
    });

    // Stop removes the timers and everything else.
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

#[test]
fn e2e_stop_without_a_supervisor_removes_leftover_timers() {
    let Some(ns) = boot_or_skip("e2e_stop_without_a_supervisor_removes_leftover_timers") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-cron-",
        "e2e-left",
        r#"  tick:
    command: "true"
    cron: {expression: "@hourly"}
"#,
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    assert!(ns
        .output(&["systemctl", "list-timers", "--all", "--no-pager"])
        .contains(&p.timer("tick")));
    let sup = p.supervisor_pid().expect("supervisor pid");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));
    let out = p.sysg(&["stop"]);
    if !out.status.success() {
        // Say what the adopting supervisor did: this path starts a supervisor only to stop.
        let log = p.ns.output(&[
            "cat",
            &format!("/var/log/systemg/{}/supervisor.log", p.project),
        ]);
        eprintln!("supervisor log:\n{log}");
    }
    assert_ok(&out, "stop without a supervisor");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}
