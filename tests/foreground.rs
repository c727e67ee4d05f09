//! `sysg start` in the foreground: output prefixed by service name, Ctrl-C stops everything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::*;

#[test]
fn foreground_prefixes_output_and_ctrl_c_stops_everything() {
    let p = Project::new(
        r#"
version: "1"
services:
  alpha:
    command: "echo alpha-says-hi; exec sleep 1000"
  beta-long-name:
    command: "echo beta-says-hi >&2; exec sleep 1000"
"#,
    );
    let mut cmd = p.cmd(&["start"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn sysg start");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(seen.iter().any(|l: &String| l.contains("alpha-says-hi"))
        && seen.iter().any(|l: &String| l.contains("beta-says-hi")))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no prefixed output within 20 s; got {seen:?}"),
        }
    }
    let alpha_line = seen.iter().find(|l| l.contains("alpha-says-hi")).cloned();
    let beta_line = seen.iter().find(|l| l.contains("beta-says-hi")).cloned();
    assert_eq!(
        alpha_line.as_deref(),
        Some("alpha          | alpha-says-hi"),
        "names are padded to one width"
    );
    assert_eq!(beta_line.as_deref(), Some("beta-long-name | beta-says-hi"));

    let (a, b) = (p.pid("alpha"), p.pid("beta-long-name"));
    // The supervisor blocks the signals it waits for; services must not inherit that.
    let st = std::fs::read_to_string(format!("/proc/{a}/status")).unwrap_or_default();
    for field in ["SigBlk:", "SigIgn:"] {
        let mask = st
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| u64::from_str_radix(l[field.len()..].trim(), 16).ok())
            .unwrap_or(u64::MAX);
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
            assert_eq!(
                mask & (1 << (sig - 1)),
                0,
                "{field} of a service has signal {sig}"
            );
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = wtx.send(child.wait());
    });
    let status = wrx
        .recv_timeout(Duration::from_secs(20))
        .expect("sysg start exits after Ctrl-C")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    assert!(!alive(a) && !alive(b), "services outlived Ctrl-C");
}

#[test]
fn a_services_last_lines_come_before_its_exit() {
    let p = Project::new(
        r#"
version: "1"
services:
  talker:
    command: "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; echo last-words; exit 3"
    restart_policy: never
  keep:
    command: "exec sleep 1000"
"#,
    );
    // stdout and stderr into one pipe, as on a terminal: the order is what the user sees.
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut cmd = p.cmd(&["start"]);
    cmd.stdout(writer.try_clone().expect("dup")).stderr(writer);
    let mut child = cmd.spawn().expect("spawn sysg start");
    drop(cmd);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exited = |l: &String| l.contains("talker") && l.contains("exited");
    while !seen.iter().any(exited) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no exit of talker within 20 s; got {seen:?}"),
        }
    }
    let exit_at = seen.iter().position(exited).unwrap_or(0);
    let last_at = seen.iter().position(|l| l.ends_with("| last-words"));
    assert!(
        last_at.is_some_and(|i| i < exit_at),
        "last-words printed after the exit line: {:?}",
        &seen[exit_at.saturating_sub(3)..]
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = wtx.send(child.wait());
    });
    wrx.recv_timeout(Duration::from_secs(20))
        .expect("sysg start exits after Ctrl-C")
        .expect("wait");
}

/// The first line of a foreground start names the backend and the reason in words; the D-Bus
/// error behind it is only at debug level.
#[test]
fn first_line_names_the_backend_and_why_in_words() {
    let p = Project::new("version: \"1\"\nservices:\n  a:\n    command: \"exec sleep 1000\"\n");
    // No user bus: `auto` must fall back, and say so in words.
    let nobus = p.home.path().join("no-bus");
    let first_lines = |args: &[&str]| -> Vec<String> {
        let mut cmd = p.cmd(args);
        cmd.env("XDG_RUNTIME_DIR", p.home.path())
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", nobus.display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sysg start");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut seen: Vec<String> = Vec::new();
        while !seen.iter().any(|l| l.contains("supervisor starting")) {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("no start-up lines within 20 s; got {seen:?}"),
            }
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT");
        reap(child, Duration::from_secs(20));
        seen
    };
    let lines = first_lines(&["--backend", "auto", "start"]);
    assert!(
        lines[0].ends_with("process backend: no systemd user manager reachable"),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("D-Bus")), "{lines:?}");
    let lines = first_lines(&["--backend", "auto", "--log-level", "debug", "start"]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("D-Bus")),
        "the D-Bus error is kept at debug level: {lines:?}"
    );
    let lines = first_lines(&["--backend", "process", "start"]);
    assert!(
        lines[0].ends_with("process backend: chosen with --backend process"),
        "{lines:?}"
    );
}
