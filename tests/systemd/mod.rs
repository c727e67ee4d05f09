//! A throwaway systemd 252 booted as PID 1 of a private PID + mount (+ cgroup) namespace, for
//! tests of the systemd backend (see docs/systemd-in-a-namespace.md in the shared docs).
//!
//! The host filesystem is shared, so the boot is fenced: a fresh /run (tmpfs), a fresh proc, a
//! cgroup2 view rooted in a private sub-cgroup, tmpfs over systemg's system directories, runtime
//! masks for every unit that would touch the host, and a minimal target needing only D-Bus and
//! journald. It is ended with SIGKILL from outside, never with a shutdown (which would remount
//! the shared root read-only).

#![allow(dead_code)]

mod project;

// Not every test crate that includes this harness uses the project helpers.
#[allow(unused_imports)]
pub use project::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[path = "../common/wait.rs"]
mod wait;
#[allow(unused_imports)] // not every test crate uses both
pub use wait::{reap, run_bounded, wait_until};

/// Units masked in the namespace beyond the `*.wants` entries found on the image.
const MASKED: &[&str] = &[
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "systemd-sysusers.service",
    "systemd-logind.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-random-seed.service",
    "systemd-journal-flush.service",
    "systemd-timesyncd.service",
    "systemd-pstore.service",
    "systemd-firstboot.service",
    "systemd-machine-id-commit.service",
    "systemd-repart.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "getty.target",
    "getty-static.service",
    "postgresql.service",
    "postgresql@.service",
    "cron.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "fstrim.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "man-db.timer",
    "dpkg-db-backup.timer",
    "swap.target",
    "local-fs.target",
    "remote-fs.target",
    "cryptsetup.target",
    "timers.target",
];

/// Units the minimal target needs: never masked.
const KEEP: &[&str] = &[
    "dbus.socket",
    "dbus.service",
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
    "systemd-journald-audit.socket",
];

const TARGET: &str = "systemg-harness.target";

/// One systemd per test at a time in this process: each boot is cheap, and serial boots keep
/// the test's expectations simple.
static SERIAL: Mutex<()> = Mutex::new(());

/// How the namespace's view of the shared filesystem is fenced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fence {
    /// Overlays over /etc, /usr and /var whose upper layers live in a tmpfs, instead of tmpfs
    /// over systemg's directories only: whatever a package install writes inside (dpkg's
    /// database, /usr/bin, /lib/systemd/system, /etc/group) stays in the namespace, and a
    /// purge can remove systemg's directories (tmpfs mount points could not be removed).
    pub overlay_system: bool,
}

/// The shell lines that fence the filesystem before systemd starts.
fn fence_commands(fence: Fence) -> &'static str {
    if fence.overlay_system {
        r#"mkdir -p /run/sysg-overlay
mount -t tmpfs tmpfs /run/sysg-overlay
for d in etc usr var; do
  mkdir -p /run/sysg-overlay/$d/upper /run/sysg-overlay/$d/work
  mount -t overlay overlay -o lowerdir=/$d,upperdir=/run/sysg-overlay/$d/upper,workdir=/run/sysg-overlay/$d/work /$d
done
"#
    } else {
        "for d in /var/lib/systemg /var/log/systemg /etc/systemg; do mkdir -p \"$d\"; mount -t tmpfs tmpfs \"$d\"; done\n"
    }
}

/// A running namespaced systemd.
pub struct NsSystemd {
    /// Host pid of the namespace's PID 1 (systemd).
    pub pid: i32,
    unshare: Child,
    cgroup: PathBuf,
    log: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

/// Why the tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if !Path::new("/lib/systemd/systemd").exists() {
        return Some("/lib/systemd/systemd is missing".into());
    }
    if cgroup2_mount().is_none() {
        return Some("no cgroup2 hierarchy is mounted".into());
    }
    None
}

/// Boot or skip: prints the one-line reason and returns `None` when the test cannot run.
pub fn boot_or_skip(test: &str) -> Option<NsSystemd> {
    boot_or_skip_with(test, Fence::default())
}

/// [`boot_or_skip`] with a chosen [`Fence`].
pub fn boot_or_skip_with(test: &str, fence: Fence) -> Option<NsSystemd> {
    if let Some(why) = skip_reason() {
        println!("skipping {test}: {why}");
        return None;
    }
    Some(
        NsSystemd::boot_with(fence).unwrap_or_else(|e| panic!("booting a namespaced systemd: {e}")),
    )
}

/// Where the host mounts the unified (cgroup2) hierarchy.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next() == Some("cgroup2"))
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

fn wants_entries() -> Vec<String> {
    let mut out = Vec::new();
    for base in ["/lib/systemd/system", "/etc/systemd/system"] {
        let Ok(dirs) = std::fs::read_dir(base) else {
            continue;
        };
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if !(name.ends_with(".wants") || name.ends_with(".requires")) {
                continue;
            }
            let Ok(units) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for u in units.flatten() {
                out.push(u.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl NsSystemd {
    /// Boot and wait until `systemctl is-system-running` says running or degraded.
    pub fn boot() -> Result<NsSystemd, String> {
        Self::boot_with(Fence::default())
    }

    /// [`NsSystemd::boot`] with a chosen [`Fence`].
    pub fn boot_with(fence: Fence) -> Result<NsSystemd, String> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let root = cgroup2_mount().ok_or("no cgroup2 mount")?;
        let cgroup = root.join(format!(
            "sysg-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));

        let mut masks: Vec<String> = MASKED.iter().map(|s| s.to_string()).collect();
        masks.extend(wants_entries());
        masks.retain(|m| !KEEP.contains(&m.as_str()) && !m.ends_with(".wants"));
        masks.sort();
        masks.dedup();
        let mask_cmds: String = masks
            .iter()
            .map(|m| format!("ln -sf /dev/null /run/systemd/system/{}\n", shell_quote(m)))
            .collect();
        let target = "[Unit]\nDescription=systemg test target\nRequires=dbus.socket dbus.service systemd-journald.service\nAfter=dbus.socket dbus.service systemd-journald.service\n";
        let inner = format!(
            r#"set -e
mount -t tmpfs tmpfs /run
umount -l /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
{fence_cmds}mkdir -p /run/systemd/system
{mask_cmds}printf '%s' {target} > /run/systemd/system/{TARGET}
export container=sysg-test
exec /lib/systemd/systemd --system --unit={TARGET} --log-target=console --log-level=warning
"#,
            target = shell_quote(target),
            fence_cmds = fence_commands(fence),
        );
        // The outer shell moves itself into a private cgroup first; `unshare --cgroup` then
        // makes that the root the namespace's systemd sees, so it never touches the host's
        // top-level cgroups (or another test's).
        let outer = format!(
            "set -e\nmkdir {cg}\necho $$ > {cg}/cgroup.procs\nexec unshare --cgroup --pid --fork --kill-child --mount --propagation private --mount-proc /bin/sh -c {inner}",
            cg = shell_quote(&cgroup.to_string_lossy()),
            inner = shell_quote(&inner),
        );
        let log = std::env::temp_dir().join(format!("sysg-ns-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let unshare = Command::new("/bin/sh")
            .arg("-c")
            .arg(outer)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("spawning unshare: {e}"))?;
        let mut ns = NsSystemd {
            pid: 0,
            unshare,
            cgroup,
            log: log.clone(),
            _serial: serial,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        // The namespace's PID 1 is unshare's child.
        let upid = ns.unshare.id();
        while ns.pid == 0 {
            // Only once the shell has exec'd unshare: before that its children are the
            // set-up commands (mkdir), not the namespace's init.
            let is_unshare = std::fs::read_to_string(format!("/proc/{upid}/comm"))
                .is_ok_and(|c| c.trim() == "unshare");
            if let Some(s) = is_unshare
                .then(|| std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children")).ok())
                .flatten()
            {
                if let Some(p) = s.split_whitespace().next().and_then(|p| p.parse().ok()) {
                    ns.pid = p;
                }
            }
            if let Ok(Some(st)) = ns.unshare.try_wait() {
                return Err(format!(
                    "unshare exited ({st}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                return Err("the namespace's init did not appear".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            let out = ns.exec(&["systemctl", "is-system-running"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                return Ok(ns);
            }
            if Instant::now() > deadline {
                let failed = ns.exec(&["systemctl", "--failed", "--no-pager"]);
                return Err(format!(
                    "systemd did not come up (state `{state}`): {}\n{}",
                    String::from_utf8_lossy(&failed.stdout),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command run inside the namespace (`nsenter -t PID -m -p`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["-m", "-p", "-C"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Run a command inside, bounded by 60 s.
    pub fn exec(&self, args: &[&str]) -> Output {
        run_bounded(self.command(args), Duration::from_secs(60))
    }

    /// stdout of a command run inside, trimmed.
    pub fn output(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.exec(args).stdout)
            .trim()
            .to_string()
    }

    /// One property of a unit as `systemctl show -p P --value` prints it.
    pub fn show(&self, unit: &str, prop: &str) -> String {
        self.output(&["systemctl", "show", "-p", prop, "--value", unit])
    }

    /// The system bus of the namespace, reachable from the host.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid
        )
    }

    /// A file inside the namespace, seen from the host (through its root).
    pub fn inner_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid))
    }

    /// `systemctl list-units --all --plain --no-legend 'sysg-*'` inside, trimmed.
    pub fn sysg_units(&self) -> String {
        self.output(&[
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "sysg-*",
        ])
    }

    /// Is this (inner) pid alive inside the namespace?
    pub fn alive(&self, inner_pid: u32) -> bool {
        let p = format!("/proc/{}/root/proc/{inner_pid}/stat", self.pid);
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| !r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }
}

impl Drop for NsSystemd {
    fn drop(&mut self) {
        if self.pid > 1 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // A killed PID 1 first waits in the kernel for every process of its namespace to die:
        // wait (bounded) until it is gone, so the tear-down is complete when drop returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pid > 1 && Instant::now() < deadline {
            let gone = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .map(|s| s.contains(") Z") || s.contains(") X"))
                .unwrap_or(true);
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&self.log);
        // Killing PID 1 ends every process of the namespace; its cgroups stay behind, empty.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cgroup.exists() && Instant::now() < deadline {
            remove_cgroup_tree(&self.cgroup);
            if self.cgroup.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
