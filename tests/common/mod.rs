//! Test harness: a private HOME per test, the real `sysg` binary, and waiting on conditions
//! with deadlines (never sleeping and hoping).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

#[path = "sandbox.rs"]
pub mod sandbox;
#[path = "wait.rs"]
mod wait;
#[allow(unused_imports)] // not every test crate uses both
pub use wait::{reap, run_bounded, wait_until};

/// The binary under test.
pub fn sysg_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sysg"))
}

/// One isolated project: a temporary HOME with the project in `home/proj`.
pub struct Project {
    pub home: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Project {
    /// A project whose systemg.yaml is `yaml`.
    pub fn new(yaml: &str) -> Project {
        let home = tempfile::Builder::new()
            .prefix("sysg-test-")
            .tempdir()
            .expect("tempdir");
        let dir = home.path().join("proj");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("systemg.yaml"), yaml).expect("write config");
        Project { home, dir }
    }

    /// Write a file in the project directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, contents).expect("write");
        p
    }

    /// The project's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join(".local/share/systemg/proj")
    }

    /// A `sysg` command in the project directory with the private HOME.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sysg_bin());
        c.args(args)
            .current_dir(&self.dir)
            .env("HOME", self.home.path())
            .env_remove("XDG_STATE_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    /// Run `sysg args..`, bounded by 60 s.
    pub fn sysg(&self, args: &[&str]) -> Output {
        run_bounded(self.cmd(args), Duration::from_secs(60))
    }

    /// `sysg status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.sysg(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The status entry of one service.
    pub fn service(&self, name: &str) -> Value {
        let st = self.status();
        st["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no service {name} in {st}"))
    }

    /// The pid of a running service.
    pub fn pid(&self, name: &str) -> u32 {
        let s = self.service(name);
        s["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no pid: {s}")) as u32
    }

    /// Start daemonized and assert success.
    pub fn start(&self) {
        let out = self.sysg(&["start", "--daemonize"]);
        assert_ok(&out, "start --daemonize");
    }

    /// Start daemonized; some services may fail (exit 1), but the supervisor must be up.
    pub fn start_allowing_failure(&self) {
        let out = self.sysg(&["start", "--daemonize"]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "start --daemonize: {out:?}"
        );
        assert!(
            self.supervisor_pid().is_some(),
            "no supervisor after start: {}",
            stderr(&out)
        );
    }

    /// The supervisor's pid from its pid file.
    pub fn supervisor_pid(&self) -> Option<i32> {
        self.supervisor_pid_of("proj")
    }

    /// The pid of the supervisor of a config that names its project `project`.
    pub fn supervisor_pid_of(&self, project: &str) -> Option<i32> {
        let file = format!(".local/share/systemg/{project}/run/supervisor.pid");
        std::fs::read_to_string(self.home.path().join(file))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Leave nothing running, whatever the test did.
        let _ = run_bounded(self.cmd(&["stop"]), Duration::from_secs(30));
    }
}

/// A process backend writing its logs and FIFOs under `dir`; its events on the receiver.
pub fn process_backend(
    dir: &Path,
    options: systemg::backend::process::ProcessOptions,
) -> (
    systemg::backend::process::ProcessBackend,
    std::sync::mpsc::Receiver<systemg::backend::BackendEvent>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let b = systemg::backend::process::ProcessBackend::with_options(
        systemg::backend::BackendPaths {
            log_dir: dir.join("logs"),
            run_dir: dir.join("run"),
            fifo_dir: dir.join("run"),
        },
        None,
        Box::new(move |ev| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(ev);
            }
        }),
        options,
    )
    .expect("process backend");
    (b, rx)
}

/// The next exit of `unit` among a backend's events (others are skipped), within `limit`.
pub fn next_exit(
    rx: &std::sync::mpsc::Receiver<systemg::backend::BackendEvent>,
    unit: &str,
    limit: Duration,
) -> (u32, systemg::spec::ExitStatus) {
    let end = std::time::Instant::now() + limit;
    loop {
        match rx.recv_timeout(end.saturating_duration_since(std::time::Instant::now())) {
            Ok(systemg::backend::BackendEvent::Exited {
                unit: u,
                pid,
                status,
            }) if u == unit => return (pid, status),
            Ok(_) => {}
            Err(e) => panic!("no exit of {unit}: {e}"),
        }
    }
}

/// The value of field `key` in /proc/PID/status (`pid` may be `self`), trimmed.
pub fn proc_status_field(pid: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
}

/// Assert exit 0, showing the output otherwise.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Is a process with this pid alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Read a pid written to a file by a test service.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Text of an output's stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of an output's stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
