//! A private mount namespace for `sysg --sys` tests: tmpfs over /var/lib/systemg, /run/systemg,
//! /var/log/systemg and /etc/systemg, so nothing lands on the host; a `systemg` group by
//! bind-mounting a copy of /etc/group (the host's file is never modified). Other users are
//! played with `setpriv`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::*;

pub const T: Duration = Duration::from_secs(20);
pub const SYSTEM_DIRS: [&str; 4] = [
    "/var/lib/systemg",
    "/run/systemg",
    "/var/log/systemg",
    "/etc/systemg",
];

/// Who runs a command.
pub enum As {
    Root,
    /// uid 65534 with the given primary gid and supplementary groups.
    User {
        gid: u32,
        groups: Vec<u32>,
    },
}

/// uid and gid 65534 with no supplementary group.
pub const NOBODY: &As = &As::User {
    gid: 65534,
    groups: Vec::new(),
};

pub struct Sandbox {
    pub holder: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub project: String,
    /// gid of the `systemg` group inside, when there is one.
    pub gid: Option<u32>,
    /// Whether `stop` must be run at the end.
    pub started: bool,
}

pub fn skip() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root");
    }
    for tool in ["/usr/bin/unshare", "/usr/bin/nsenter", "/usr/bin/setpriv"] {
        if !std::path::Path::new(tool).exists() {
            return Some("needs unshare, nsenter and setpriv");
        }
    }
    None
}

/// A gid unused on this host.
pub fn free_gid() -> u32 {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let used: Vec<u32> = groups
        .lines()
        .filter_map(|l| l.split(':').nth(2).and_then(|g| g.parse().ok()))
        .collect();
    (64000..65000)
        .find(|g| !used.contains(g))
        .expect("a free gid")
}

impl Sandbox {
    pub fn new(project: &str, with_group: bool, services: &str) -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("sysg-sys-")
            .tempdir()
            .unwrap();
        // Readable by the unprivileged users the tests play.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("systemg.yaml");
        std::fs::write(
            &config,
            format!("version: \"1\"\nproject: {project}\nservices:\n{services}"),
        )
        .unwrap();
        let gid = with_group.then(free_gid);
        let mut script = String::from("set -e\n");
        for d in SYSTEM_DIRS {
            script.push_str(&format!(
                "mkdir -p {d}\nmount -t tmpfs -o mode=0755 tmpfs {d}\n"
            ));
        }
        if let Some(g) = gid {
            let group_file = dir.path().join("group");
            let mut text = std::fs::read_to_string("/etc/group").unwrap();
            text.push_str(&format!("systemg:x:{g}:\n"));
            std::fs::write(&group_file, text).unwrap();
            script.push_str(&format!(
                "mount --bind {} /etc/group\n",
                group_file.display()
            ));
        }
        script.push_str("exec sleep 100000\n");
        let holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = holder.id();
        wait_until("the sandbox to be set up", T, || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        Sandbox {
            holder,
            dir,
            config,
            project: project.to_string(),
            gid,
            started: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A path inside the sandbox, seen from here.
    pub fn inside(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }

    /// `sysg --sys -c CONFIG ARGS..` inside, as `who`.
    pub fn sysg(&self, who: &As, args: &[&str]) -> Output {
        let mut full = vec!["--sys"];
        full.extend_from_slice(args);
        self.sysg_any(who, &full)
    }

    /// `sysg -c CONFIG ARGS..` inside, as `who`, without `--sys`.
    pub fn sysg_any(&self, who: &As, args: &[&str]) -> Output {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid().to_string())
            .arg("-m")
            .arg(format!("--wd={}", self.dir.path().display()));
        if let As::User { gid, groups } = who {
            c.args(["setpriv", "--reuid=65534", &format!("--regid={gid}")]);
            if groups.is_empty() {
                c.arg("--clear-groups");
            } else {
                let list: Vec<String> = groups.iter().map(u32::to_string).collect();
                c.arg(format!("--groups={}", list.join(",")));
            }
        }
        c.arg(sysg_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("NO_COLOR", "1")
            .env("XDG_STATE_HOME", self.dir.path().join("user-state"))
            .stdin(Stdio::null());
        run_bounded(c, Duration::from_secs(60))
    }

    pub fn start(&mut self, extra: &[&str]) -> Output {
        self.started = true;
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--backend", "process", "start", "--daemonize"]);
        self.sysg(&As::Root, &args)
    }

    pub fn status(&self, who: &As) -> serde_json::Value {
        let out = self.sysg(who, &["status", "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json ({e}): {}{}", stdout(&out), stderr(&out)))
    }

    pub fn service_pid(&self, name: &str) -> u32 {
        let st = self.status(&As::Root);
        st["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .and_then(|s| s["pid"].as_u64())
            .unwrap_or_else(|| panic!("no pid for {name}: {st}")) as u32
    }

    pub fn supervisor_pid(&self) -> Option<u32> {
        std::fs::read_to_string(
            self.inside(&format!("/run/systemg/{}/supervisor.pid", self.project)),
        )
        .ok()
        .and_then(|s| s.trim().parse().ok())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.started {
            let _ = self.sysg(&As::Root, &["stop"]);
            if let Some(pid) = self.supervisor_pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// (mode bits, uid, gid) of a path.
pub fn owner_mode(path: &std::path::Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

pub fn one_line(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}
