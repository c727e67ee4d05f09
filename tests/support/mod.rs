//! Helpers of the reliability suite: what /proc says about a process, tmpfs mounts that are
//! always undone, and the pids a service recorded for each of its runs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Voluntary plus involuntary context switches of every live thread of `pid`: how often the
/// process woke up (a sleeping thread is never switched).
pub fn wakeups(pid: u32) -> u64 {
    let mut total = 0;
    for (_, status) in task_files(pid, "status") {
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches")
                || line.starts_with("nonvoluntary_ctxt_switches")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Names of the threads of `pid`.
pub fn thread_names(pid: u32) -> Vec<String> {
    task_files(pid, "comm")
        .into_iter()
        .map(|(_, c)| c.trim().to_string())
        .collect()
}

/// Wake-ups per thread name, for messages.
pub fn wakeups_by_thread(pid: u32) -> String {
    let names = task_files(pid, "comm");
    let status = task_files(pid, "status");
    names
        .iter()
        .map(|(tid, name)| {
            let n: u64 = status
                .iter()
                .filter(|(t, _)| t == tid)
                .flat_map(|(_, s)| s.lines())
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            format!("{}={n}", name.trim())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn task_files(pid: u32, file: &str) -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_string_lossy().into_owned();
            std::fs::read_to_string(t.path().join(file))
                .ok()
                .map(|s| (tid, s))
        })
        .collect()
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Every pid written to `file`, one per line (a service appends `$$` each time it starts).
pub fn recorded_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Is this pid alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Total size in bytes of the files in `dir` whose name starts with `prefix`.
pub fn size_of_files(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A tmpfs mounted for one test, unmounted (lazily, so that nothing can keep it busy) when
/// dropped, after `before_unmount` (which stops what runs on it, even when the test failed).
pub struct Tmpfs {
    pub target: PathBuf,
    before_unmount: Option<Box<dyn FnOnce()>>,
}

impl Tmpfs {
    /// Mount a tmpfs with `options` (e.g. `size=64k`, `ro`) on `target`, creating it.
    pub fn mount(target: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(target).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(target)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            target.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            target: target.to_path_buf(),
            before_unmount: None,
        }
    }

    /// Run `f` before unmounting.
    pub fn before_unmount(mut self, f: impl FnOnce() + 'static) -> Tmpfs {
        self.before_unmount = Some(Box::new(f));
        self
    }

    /// Remount with new options (e.g. `remount,ro`).
    pub fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", options])
            .arg(&self.target)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "remount {} {options}: {}",
            self.target.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(f) = self.before_unmount.take() {
            f();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.target).output();
    }
}
