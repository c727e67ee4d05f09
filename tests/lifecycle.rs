//! End-to-end tests of the real `sysg` binary with the process backend against real processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn start_status_stop() {
    let p = Project::new(
        r#"
version: "1"
services:
  one:
    command: "sleep 1000"
  two:
    exec: ["sleep", "1001"]
"#,
    );
    p.start();
    let one = p.pid("one");
    let two = p.pid("two");
    assert!(alive(one) && alive(two));
    let st = p.status();
    assert_eq!(st["backend"], "process");
    assert_eq!(st["project"], "proj");
    assert_eq!(p.service("one")["state"], "running");
    let out = p.sysg(&["status"]);
    assert_ok(&out, "status");
    assert!(stdout(&out).contains("one"), "{}", stdout(&out));

    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    assert!(!alive(one) && !alive(two), "services survived stop");
    let out = p.sysg(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "status without supervisor exits 3"
    );
}

#[test]
fn completed_dependency_gates_dependent() {
    let p = Project::new(
        r#"
version: "1"
services:
  migrate:
    command: "touch migrated"
    restart_policy: never
  web:
    command: "test -f migrated && exec sleep 1000"
    restart_policy: never
    depends_on:
      - service: migrate
        condition: completed
"#,
    );
    p.start();
    assert_eq!(p.service("migrate")["state"], "completed");
    assert_eq!(p.service("web")["state"], "running");
}

#[test]
fn failed_dependency_keeps_dependents_down() {
    let p = Project::new(
        r#"
version: "1"
services:
  db:
    command: "exit 1"
    restart_policy: never
  web:
    command: "touch web-ran; exec sleep 1000"
    depends_on: [db]
"#,
    );
    let out = p.sysg(&["start", "--daemonize"]);
    assert!(
        !out.status.success(),
        "start must fail when a service fails"
    );
    assert!(stderr(&out).contains("db"), "{}", stderr(&out));
    assert_eq!(p.service("db")["state"], "failed");
    let web = p.service("web");
    assert!(web["pid"].is_null(), "{web}");
    assert!(
        web["reason"].as_str().unwrap_or("").contains("db"),
        "reason should name the dependency: {web}"
    );
}

#[test]
fn crash_loop_backs_off_and_gives_up() {
    let p = Project::new(
        r#"
version: "1"
services:
  flaky:
    command: "echo run >> runs; exit 3"
    restart_policy: on-failure
    backoff: 50ms
    max_restarts: 3
"#,
    );
    let _ = p.sysg(&["start", "--daemonize"]);
    wait_until("flaky gives up", T, || {
        p.service("flaky")["state"] == "failed"
    });
    let s = p.service("flaky");
    assert_eq!(s["restarts"], 3, "{s}");
    assert_eq!(s["last_exit"]["kind"], "code");
    assert_eq!(s["last_exit"]["value"], 3);
    let runs = std::fs::read_to_string(p.dir.join("runs")).unwrap_or_default();
    assert_eq!(runs.lines().count(), 4, "first run plus three restarts");
}

#[test]
fn restart_policies_mean_what_they_say() {
    let p = Project::new(
        r#"
version: "1"
services:
  never-fails:
    command: "exit 1"
    restart_policy: never
  onfail-ok:
    command: "exit 0"
    restart_policy: on-failure
    backoff: 10ms
  always-ok:
    command: "echo x >> always; exit 0"
    restart_policy: always
    backoff: 10ms
"#,
    );
    let _ = p.sysg(&["start", "--daemonize"]);
    wait_until("always restarts after exit 0", T, || {
        p.service("always-ok")["restarts"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(p.service("never-fails")["state"], "failed");
    assert_eq!(p.service("never-fails")["restarts"], 0);
    assert_eq!(p.service("onfail-ok")["state"], "completed");
    assert_eq!(p.service("onfail-ok")["restarts"], 0);
}

#[test]
fn restart_one_service_leaves_others() {
    let p = Project::new(
        r#"
version: "1"
services:
  a:
    command: "sleep 1000"
  b:
    command: "sleep 1000"
"#,
    );
    p.start();
    let (a, b) = (p.pid("a"), p.pid("b"));
    let out = p.sysg(&["restart", "--service", "a"]);
    assert_ok(&out, "restart a");
    let a2 = p.pid("a");
    assert_ne!(a, a2);
    assert!(!alive(a));
    assert_eq!(p.pid("b"), b, "b must keep running untouched");
}

#[test]
fn stop_kills_double_forked_descendants() {
    let p = Project::new(
        r#"
version: "1"
services:
  forker:
    command: "sh ./fork.sh"
"#,
    );
    p.write(
        "fork.sh",
        "setsid sh -c 'sleep 1000 & echo $! > grandchild.pid; wait' &\n( sleep 1001 & echo $! > orphan.pid ) &\nexec sleep 1002\n",
    );
    p.start();
    let gc = p.dir.join("grandchild.pid");
    let orphan = p.dir.join("orphan.pid");
    wait_until("descendants wrote their pids", T, || {
        read_pid(&gc).is_some() && read_pid(&orphan).is_some()
    });
    let (g, o) = (read_pid(&gc).unwrap_or(0), read_pid(&orphan).unwrap_or(0));
    assert!(alive(g) && alive(o));
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("setsid'd and orphaned descendants die", T, || {
        !alive(g) && !alive(o)
    });
}

#[test]
fn logs_capture_both_streams() {
    let p = Project::new(
        r#"
version: "1"
services:
  talker:
    command: "echo to-stdout; echo to-stderr >&2; exec sleep 1000"
"#,
    );
    p.start();
    wait_until("stdout line in logs", T, || {
        stdout(&p.sysg(&["logs", "--service", "talker", "--kind", "stdout"])).contains("to-stdout")
    });
    wait_until("stderr line in logs", T, || {
        stdout(&p.sysg(&["logs", "--service", "talker", "--kind", "stderr"])).contains("to-stderr")
    });
    let out = stdout(&p.sysg(&["logs", "--service", "talker", "--kind", "stdout"]));
    assert!(!out.contains("to-stderr"), "streams must stay apart: {out}");
}

#[test]
fn supervisor_crash_then_readoption_without_duplicates() {
    let p = Project::new(
        r#"
version: "1"
services:
  steady:
    command: "exec sleep 1000"
"#,
    );
    p.start();
    let pid = p.pid("steady");
    let sup = p.supervisor_pid().expect("supervisor pid file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill supervisor");
    wait_until("supervisor gone", T, || !alive(sup as u32));
    assert!(alive(pid), "the service must outlive its supervisor");
    p.start();
    assert_eq!(p.pid("steady"), pid, "re-adopted, not started twice");
    assert_eq!(p.service("steady")["state"], "running");
    // Stop still reaches the adopted process.
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("adopted service stopped", T, || !alive(pid));
}

#[test]
fn restart_with_new_config_applies_the_difference() {
    let p = Project::new(
        r#"
version: "1"
services:
  keep:
    command: "sleep 1000"
  change:
    command: "sleep 1000"
  remove:
    command: "sleep 1000"
"#,
    );
    p.start();
    let (keep, change, remove) = (p.pid("keep"), p.pid("change"), p.pid("remove"));
    let new = p.write(
        "next.yaml",
        r#"
version: "1"
project: proj
services:
  keep:
    command: "sleep 1000"
  change:
    command: "sleep 1001"
  add:
    command: "sleep 1000"
"#,
    );
    let out = p.sysg(&["restart", "--config", new.to_str().unwrap_or_default()]);
    assert_ok(&out, "restart --config");
    assert!(
        stdout(&out)
            .contains("added add; removed remove; changed change (command); unchanged keep"),
        "{}",
        stdout(&out)
    );
    let st = p.status();
    let names: Vec<&str> = st["services"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["keep", "change", "add"]);
    assert_eq!(p.pid("keep"), keep, "unchanged service keeps running");
    assert_ne!(p.pid("change"), change, "changed service restarted");
    assert!(!alive(change));
    wait_until("removed service stopped", T, || !alive(remove));
    assert!(alive(p.pid("add")));
}

#[test]
fn control_socket_refuses_other_uids() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another uid");
        return;
    }
    let p = Project::new(
        r#"
version: "1"
services:
  a:
    command: "sleep 1000"
"#,
    );
    p.start();
    // Open the path so that only the server's own peer-credential check stands in the way.
    use std::os::unix::fs::PermissionsExt;
    let mut dir = p.state_dir().join("run/control.sock");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    while dir.pop() {
        if dir.as_os_str().len() <= 1 || dir == std::path::Path::new("/tmp") {
            break;
        }
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    }
    let mut cmd = p.cmd(&["status", "--json"]);
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    let out = run_bounded(cmd, Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("permission denied"),
        "stderr: {}",
        stderr(&out)
    );
    assert_eq!(p.service("a")["state"], "running", "supervisor unaffected");
}

#[test]
fn second_start_does_not_duplicate() {
    let p = Project::new(
        r#"
version: "1"
services:
  a:
    command: "sleep 1000"
"#,
    );
    p.start();
    let pid = p.pid("a");
    p.start();
    assert_eq!(p.pid("a"), pid);
}

#[test]
fn a_program_that_cannot_run_fails_its_start_with_the_reason() {
    let p = Project::new(
        r#"
version: "1"
services:
  noexec:
    exec: ["./script"]
    restart_policy: never
  missing:
    exec: ["no-such-program-xyz"]
    restart_policy: never
  plain:
    command: "exec sleep 1000"
"#,
    );
    // Executable, but no `#!` line: only the exec itself, in the child, can find that out.
    let script = p.write("script", "echo hi\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "noexec is failed: start failed: noexec: cannot run `./script`: Exec format error"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "missing is failed: start failed: missing: cannot run `no-such-program-xyz`: not \
             found in PATH"
        ),
        "{err}"
    );
    // A plain command runs without a shell in between: the main process is `sleep` itself.
    let pid = p.pid("plain");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(comm.trim(), "sleep");
    assert_ok(&p.sysg(&["stop"]), "stop");
    assert!(!alive(pid));
}

#[test]
fn status_of_a_running_supervisor_does_not_need_a_valid_config() {
    let p = Project::new(
        r#"
version: "1"
services:
  one:
    command: "exec sleep 1000"
"#,
    );
    p.start();
    // Being edited: a typo the next restart will report. Status still reads the supervisor.
    p.write(
        "systemg.yaml",
        "version: \"1\"\nservices:\n  one:\n    comand: \"exec sleep 1000\"\n",
    );
    let out = p.sysg(&["status"]);
    assert_ok(&out, "status");
    assert!(stdout(&out).contains("running"), "{}", stdout(&out));
    assert_ok(&p.sysg(&["inspect", "one"]), "inspect");
    let out = p.sysg(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Nor to stop what runs.
    let one = p.pid("one");
    assert_ok(&p.sysg(&["stop"]), "stop");
    assert!(!alive(one));
    // With nothing running, the config is needed again, and its problems are reported.
    let out = p.sysg(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown key `comand`"),
        "{}",
        stderr(&out)
    );
    // Fixed, so that the harness's final stop finds a valid config.
    p.write(
        "systemg.yaml",
        "version: \"1\"\nservices:\n  one:\n    command: \"exec sleep 1000\"\n",
    );
}

#[test]
fn a_start_whose_service_keeps_failing_at_zero_backoff_ends_with_a_verdict() {
    // Issue 23, item 8: `exit 1` with a zero backoff never shows `backoff` between two
    // attempts; the start must still end, fail and name it (and the unit waiting on it).
    let p = Project::new(
        r#"
version: "1"
services:
  bad:
    command: "echo run >> runs; exit 1"
    restart_policy: on-failure
    backoff: 0s
  waiter:
    command: "sleep 1000"
    depends_on: [bad]
  fine:
    command: "sleep 1000"
"#,
    );
    let began = std::time::Instant::now();
    let out = run_bounded(p.cmd(&["--backend", "process", "start", "--daemonize"]), T);
    assert!(began.elapsed() < Duration::from_secs(10), "{out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("bad failed during start-up: exit 1; restarting (restart "),
        "{err}"
    );
    assert!(err.contains("waiter is waiting: waiting for bad"), "{err}");
    assert!(!err.contains("fine"), "{err}");
    // The supervisor stays up and keeps applying the policy.
    assert!(p.supervisor_pid().is_some());
    assert_eq!(p.service("fine")["state"], "running");
    let runs = || {
        std::fs::read_to_string(p.dir.join("runs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let seen = runs();
    wait_until("bad to be restarted again", T, || runs() > seen);
    assert_ok(&p.sysg(&["stop"]), "stop");
}

/// Stopping many services at once SIGTERMs them all and none needs the SIGKILL of its stop
/// timeout: the supervisor handles the burst of exits with a few state writes, not one write
/// (two fsyncs) per exit, which queued the exits behind the disk until the timeouts expired
/// (issue 23, item 10). The 3 s stop timeout is the only clock here: a stop of 1,000 takes
/// well under a second, while one write per exit took over 10 s for 1,000.
#[test]
fn stopping_hundreds_of_services_kills_none() {
    const N: usize = 400;
    let mut yaml = String::from("version: \"1\"\nservices:\n");
    for i in 0..N {
        yaml.push_str(&format!(
            "  s{i}:\n    exec: [\"sleep\", \"1000\"]\n    stop_timeout: 3s\n"
        ));
    }
    let p = Project::new(&yaml);
    p.start();
    let st = p.status();
    let pids: Vec<u32> = st["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["pid"].as_u64().map(|x| x as u32))
        .collect();
    assert_eq!(pids.len(), N, "not every service runs: {st}");

    let out = run_bounded(p.cmd(&["stop"]), Duration::from_secs(120));
    assert_ok(&out, "stop");
    wait_until("every service is gone", T, || {
        pids.iter().all(|&x| !alive(x))
    });

    let log =
        std::fs::read_to_string(p.state_dir().join("logs/supervisor.log")).expect("supervisor.log");
    let killed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("did not stop in time"))
        .collect();
    assert!(
        killed.is_empty(),
        "{} of {N} services were SIGKILLed:\n{}",
        killed.len(),
        killed.join("\n")
    );
    // The last state written (before the supervisor exited) has every service ended by the
    // SIGTERM of the stop.
    let text = std::fs::read_to_string(p.state_dir().join("state.json")).expect("state.json");
    let state: serde_json::Value = serde_json::from_str(&text).expect("state.json is JSON");
    for i in 0..N {
        let exit = &state["units"][format!("s{i}")]["last_exit"];
        assert_eq!(
            (exit["kind"].as_str(), exit["value"].as_u64()),
            (Some("signal"), Some(15)),
            "s{i}: {exit}"
        );
    }
}

#[test]
fn after_a_reload_every_command_knows_the_new_services() {
    let p = Project::new(
        r#"
version: "1"
services:
  web:
    command: "sleep 1000"
"#,
    );
    p.start();
    let new = p.write(
        "changed.yaml",
        r#"
version: "1"
project: proj
services:
  web:
    command: "sleep 1000"
  extra:
    command: "echo extra-out; exec sleep 1000"
"#,
    );
    assert_ok(
        &p.sysg(&["restart", "--config", new.to_str().unwrap_or_default()]),
        "restart --config",
    );
    // systemg.yaml (without `extra`) is still what the directory holds.
    let first = p.pid("extra");
    let out = p.sysg(&["restart", "-s", "extra"]);
    assert_ok(&out, "restart -s extra");
    wait_until("extra restarted", T, || !alive(first));
    wait_until("extra logged", T, || {
        stdout(&p.sysg(&["logs", "-s", "extra"])).contains("extra-out")
    });
    assert_ok(&p.sysg(&["logs", "-s", "extra"]), "logs -s extra");
    assert_ok(&p.sysg(&["status", "-s", "extra"]), "status -s extra");
    assert_ok(&p.sysg(&["inspect", "extra"]), "inspect extra");
    assert_ok(&p.sysg(&["stop", "-s", "extra"]), "stop -s extra");
    // A name that runs nowhere is still refused, with what exists.
    let out = p.sysg(&["restart", "-s", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("services are: web, extra"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stop_says_what_it_stopped() {
    let p = Project::new(
        r#"
version: "1"
services:
  web:
    command: "sleep 1000"
  worker:
    command: "sleep 1000"
  once:
    command: "true"
    restart_policy: never
"#,
    );
    p.start();
    wait_until("once completed", T, || {
        p.service("once")["state"] == "completed"
    });
    let out = p.sysg(&["stop", "-s", "worker"]);
    assert_ok(&out, "stop -s worker");
    let line = stdout(&out);
    assert!(line.contains("stopped: worker ("), "{line}");
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    let line = stdout(&out);
    // What was up: not the completed one, nor the one already stopped.
    assert!(line.contains("stopped: web ("), "{line}");
    assert!(line.trim_end().ends_with(" s)"), "{line}");
}

#[test]
fn a_failed_start_shows_the_last_stderr_lines() {
    let p = Project::new(
        r#"
version: "1"
services:
  bad:
    command: "echo out-line; for i in 1 2 3 4 5 6 7; do echo err-$i >&2; done; exit 2"
    restart_policy: never
  good:
    command: "exec sleep 1000"
"#,
    );
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("last lines of bad's stderr:"), "{err}");
    // The last five, in order, and nothing of stdout.
    let shown: Vec<&str> = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("bad | "))
        .collect();
    assert_eq!(
        shown,
        vec!["err-3", "err-4", "err-5", "err-6", "err-7"],
        "{err}"
    );
    assert!(err.contains("more with `sysg logs -s bad`"), "{err}");
    assert!(!err.contains("good"), "{err}");
}
