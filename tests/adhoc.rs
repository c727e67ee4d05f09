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
