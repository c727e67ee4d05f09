//! `sysg run`: ad-hoc units without a config file, on the process backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A directory without a config file, with a private HOME (so the `adhoc` project is ours).
fn bare() -> Project {
    let p = Project::new("unused");
    std::fs::remove_file(p.dir.join("systemg.yaml")).expect("rm");
    p
}

fn adhoc_status(p: &Project) -> Value {
    let out = p.sysg(&["--project", "adhoc", "status", "--json"]);
    serde_json::from_slice(&out.stdout).expect("status json")
}

fn unit(p: &Project, name: &str) -> Option<Value> {
    adhoc_status(p)["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
}

#[test]
fn run_supervises_a_command_until_it_is_stopped_and_forgotten() {
    let p = bare();
    let out = p.sysg(&[
        "--backend",
        "process",
        "run",
        "--name",
        "greeter",
        "--env",
        "GREETING=hi",
        "--",
        "sh",
        "-c",
        "echo $GREETING from $(pwd); exec sleep 1000",
    ]);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out).trim(), "greeter");
    let st = adhoc_status(&p);
    assert_eq!(st["project"], "adhoc");
    assert_eq!(st["backend"], "process");
    let pid = unit(&p, "greeter").expect("listed")["pid"]
        .as_u64()
        .expect("pid") as u32;
    assert!(alive(pid));
    // Without a config here, plain `status` finds the one running supervisor: adhoc.
    assert_eq!(p.sysg(&["status"]).status.code(), Some(0));

    // Env and working directory reach the command.
    let want = format!("hi from {}", p.dir.display());
    wait_until("the greeting is logged", T, || {
        stdout(&p.sysg(&["logs", "--service", "greeter"])).contains(&want)
    });

    // Names come from the program and are made unique.
    let a = p.sysg(&["run", "--", "sleep", "1000"]);
    let b = p.sysg(&["run", "--", "sleep", "1000"]);
    assert_eq!(stdout(&a).trim(), "sleep", "{}", stderr(&a));
    assert_eq!(stdout(&b).trim(), "sleep-2", "{}", stderr(&b));
    let taken = p.sysg(&["run", "--name", "greeter", "--", "true"]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(
        stderr(&taken).contains("already exists"),
        "{}",
        stderr(&taken)
    );

    // Stopping by name ends it and forgets it; the others keep running.
    assert_ok(&p.sysg(&["stop", "--service", "greeter"]), "stop greeter");
    assert!(!alive(pid));
    assert!(unit(&p, "greeter").is_none(), "forgotten after stop");
    assert_eq!(unit(&p, "sleep").expect("sleep")["state"], "running");

    // A program that does not exist is refused before anything starts.
    let missing = p.sysg(&["run", "--", "no-such-program-sysg"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("not found in PATH"));

    // `stop` without a selection ends the ad-hoc supervisor and everything in it.
    let sleeper = unit(&p, "sleep").expect("sleep")["pid"]
        .as_u64()
        .expect("pid") as u32;
    assert_ok(&p.sysg(&["--project", "adhoc", "stop"]), "stop all");
    assert!(!alive(sleeper));
    assert_eq!(p.sysg(&["status"]).status.code(), Some(3));
}

#[test]
fn run_wait_exits_with_the_commands_status() {
    let p = bare();
    let code = |args: &[&str]| {
        let mut full = vec!["--backend", "process", "run", "--wait", "--"];
        full.extend_from_slice(args);
        p.sysg(&full).status.code()
    };
    assert_eq!(code(&["sh", "-c", "exit 0"]), Some(0));
    assert_eq!(code(&["sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["sh", "-c", "kill -TERM $$"]), Some(128 + 15));
    // Waited-for units are forgotten once they finished.
    let st = adhoc_status(&p);
    assert_eq!(st["services"], serde_json::json!([]), "{st}");

    // A unit stopped while someone waits for it: the waiter gets its status.
    let mut waiting = p.cmd(&["run", "--wait", "--name", "long", "--", "sleep", "1000"]);
    waiting.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = waiting.spawn().expect("spawn");
    wait_until("long runs", T, || {
        unit(&p, "long").is_some_and(|u| u["state"] == "running")
    });
    assert_ok(&p.sysg(&["stop", "--service", "long"]), "stop long");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(T)
        .expect("run --wait returned")
        .expect("wait");
    assert_eq!(status.code(), Some(128 + 15));
    assert!(unit(&p, "long").is_none());

    // --restart always keeps a crashing command coming back.
    assert_ok(
        &p.sysg(&[
            "run",
            "--name",
            "again",
            "--restart",
            "always",
            "--",
            "sh",
            "-c",
            "echo x >> runs; sleep 0.3; exit 1",
        ]),
        "run --restart always",
    );
    wait_until("it ran twice", T, || {
        std::fs::read_to_string(p.dir.join("runs")).is_ok_and(|s| s.lines().count() >= 2)
    });
    assert!(unit(&p, "again").expect("again")["restarts"].as_u64() >= Some(1));
    assert_ok(&p.sysg(&["--project", "adhoc", "stop"]), "stop all");
}

#[test]
fn run_scope_runs_in_the_foreground_and_exits_with_the_commands_status() {
    let p = bare();
    let out = p.sysg(&[
        "--backend",
        "process",
        "run",
        "--scope",
        "--env",
        "GREETING=hi",
        "--",
        "sh",
        "-c",
        "echo $GREETING; cat /proc/self/cgroup; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("hi\n"), "{text}");
    // Where this process may make cgroups (root here), the command had a fresh one.
    if nix::unistd::Uid::effective().is_root() {
        let cg = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("");
        // Its own cgroup, or a transient scope where a systemd manager answers.
        assert!(
            cg.contains("/sysg-adhoc/run_") || cg.contains("/sysg-adhoc.slice/sysg-adhoc-run_"),
            "not in a cgroup of its own: {text}"
        );
    }
    // No supervisor was involved.
    assert!(adhoc_status(&p)["services"]
        .as_array()
        .is_none_or(|a| a.is_empty()));

    // 128+N after signal N.
    let out = p.sysg(&["run", "--scope", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));

    // With --wait or --restart: a usage error.
    for extra in [&["--wait"][..], &["--restart", "always"][..]] {
        let mut args = vec!["run", "--scope"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        let out = p.sysg(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--scope"), "{}", stderr(&out));
    }
}

#[test]
fn run_wait_streams_the_output_and_leaves_nothing_running() {
    let p = bare();
    let out = p.sysg(&[
        "--backend",
        "process",
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo hi; echo oops >&2; i=0; while [ $i -lt 100 ]; do echo n$i; i=$((i+1)); done; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    let want: String = std::iter::once("hi".to_string())
        .chain((0..100).map(|i| format!("n{i}")))
        .map(|l| l + "\n")
        .collect();
    assert_eq!(text, want, "every stdout line, in order, nothing else");
    assert!(stderr(&out).contains("oops"), "{}", stderr(&out));
    // The supervisor it started is gone: nothing else was in it.
    let st = p.sysg(&["--project", "adhoc", "status"]);
    assert_eq!(st.status.code(), Some(3), "{}", stdout(&st));
    // The output stays readable.
    let logs = p.sysg(&["--project", "adhoc", "logs", "-s", "sh", "-n", "500"]);
    assert_ok(&logs, "logs -s sh");
    assert!(stdout(&logs).contains("hi"), "{}", stdout(&logs));

    // A second run of the same program shows only its own output, not the first one's.
    let out = p.sysg(&[
        "--backend",
        "process",
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo second",
    ]);
    assert_ok(&out, "second run");
    assert_eq!(stdout(&out), "second\n");
}
