//! A HOME deeper than a socket address can hold (issue 19 item 1): every socket of the
//! project (control socket, the services' `SYSG_SOCKET`) is bound and connected through a
//! descriptor of its directory, so start, status, spawn and stop work as anywhere else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

fn sysg(home: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(sysg_bin());
    c.args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env("SYSG", sysg_bin())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    run_bounded(c, T)
}

/// A 200-character HOME (more than the 107 bytes of a socket address on its own).
fn deep_home(tmp: &Path) -> PathBuf {
    let mut home = tmp.to_path_buf();
    while home.as_os_str().len() < 200 {
        home.push("deep-ci-workspace-directory");
    }
    let home = PathBuf::from(&home.to_string_lossy()[..200]);
    std::fs::create_dir_all(&home).unwrap();
    home
}

#[test]
fn a_deep_home_starts_spawns_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let home = deep_home(tmp.path());
    assert_eq!(home.as_os_str().len(), 200);
    let dir = home.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("systemg.yaml"),
        r#"version: "1"
services:
  web:
    command: |
      $SYSG spawn --name kid -- sleep 1000 > kid.pid
      exec sleep 1000
    spawn:
      mode: dynamic
"#,
    )
    .unwrap();
    let socket = home.join(".local/share/systemg/app/run/control.sock");
    assert!(socket.as_os_str().len() > 107);

    let out = sysg(&home, &dir, &["start", "--daemonize"]);
    assert_ok(&out, "start --daemonize");
    // The socket is where it belongs, at its long path.
    assert!(
        std::fs::symlink_metadata(&socket).is_ok(),
        "{}",
        socket.display()
    );

    // The service reached the supervisor through its (long) SYSG_SOCKET.
    let pid_file = dir.join("kid.pid");
    wait_until("the spawned child's pid", T, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let kid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(kid));

    let out = sysg(&home, &dir, &["status", "--json"]);
    assert_ok(&out, "status");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let web = st["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "web").cloned())
        .expect("web in status");
    assert_eq!(web["state"], "running", "{web}");
    assert_eq!(web["children"][0]["pid"], kid, "{web}");

    let out = sysg(&home, &dir, &["stop"]);
    assert_ok(&out, "stop");
    wait_until("the child stopped", T, || !alive(kid));
    let out = sysg(&home, &dir, &["status"]);
    assert!(!out.status.success(), "status after stop: {out:?}");
}
