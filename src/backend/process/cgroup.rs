//! cgroup v2: find the hierarchy, create one cgroup per unit, list and kill its processes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::schema::{CgroupLimits, Size};

/// Suffix of the group holding a service's spawned children.
pub const SPAWN_GROUP_SUFFIX: &str = "@spawn";

/// Where this supervisor may create unit cgroups.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    /// The cgroup2 mount point.
    pub mount: PathBuf,
    /// The supervisor's own cgroup directory.
    pub own: PathBuf,
    /// Suffix naming this project instance (see `for_instance`).
    pub instance: String,
}

/// A unit's cgroup, created and ready for the child to join.
pub struct UnitCgroup {
    pub dir: PathBuf,
    /// `cgroup.procs`, opened for writing before the fork; the child writes `0` into it.
    pub procs: File,
    /// Made for this start, not left by an earlier instance. Only a fresh cgroup may receive a
    /// child through clone3(CLONE_INTO_CGROUP): on current kernels (seen on 6.18) a cgroup
    /// that was ever killed through `cgroup.kill` SIGKILLs every process later cloned into it.
    /// Joining by writing `cgroup.procs` is not affected.
    pub fresh: bool,
}

impl CgroupRoot {
    /// The cgroup2 mount from /proc/self/mountinfo and our cgroup from /proc/self/cgroup.
    pub fn detect() -> Option<CgroupRoot> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = cgroup2_mount(&mountinfo)?;
        let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own_cgroup(&cgroup)?;
        let own = mount.join(rel.trim_start_matches('/'));
        own.is_dir().then_some(CgroupRoot {
            mount,
            own,
            instance: String::new(),
        })
    }

    /// Tie the cgroups to one project instance (its run directory): two projects that share a
    /// name (in two HOMEs, or two checkouts) must never share, or kill, each other's cgroups.
    pub fn for_instance(mut self, run_dir: &std::path::Path) -> CgroupRoot {
        self.instance = instance_suffix(run_dir);
        self
    }

    /// Directories `create` tries, in order: our own cgroup, then its parent.
    fn bases(&self) -> Vec<PathBuf> {
        let mut bases = vec![self.own.clone()];
        if let Some(parent) = self.own.parent() {
            if self.own != self.mount && parent.starts_with(&self.mount) {
                bases.push(parent.to_path_buf());
            }
        }
        bases
    }

    /// True when `create` could make a unit cgroup: one of its bases is writable by us (root,
    /// or a subtree delegated to our uid).
    pub fn writable(&self) -> bool {
        self.bases().iter().any(|b| {
            nix::unistd::access(b, nix::unistd::AccessFlags::W_OK).is_ok()
                && nix::unistd::access(&b.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK)
                    .is_ok()
        })
    }

    /// Every directory `create` may have made for `unit` (`<service>` or `<service>/<child>`)
    /// of the instance's group `group` (`sysg-<project>-<hash>`), one per base.
    pub fn unit_dirs(&self, group: &str, unit: &str) -> Vec<PathBuf> {
        let rel = match unit.split_once('/') {
            Some((service, child)) => format!("{service}{SPAWN_GROUP_SUFFIX}/{child}"),
            None => unit.to_string(),
        };
        self.bases()
            .into_iter()
            .map(|b| b.join(group).join(&rel))
            .collect()
    }

    /// Create the cgroup of a spawned child: `<service>@spawn/<child>` next to the service's
    /// own cgroup (never inside it: a cgroup holding processes cannot hand controllers down).
    /// The `@spawn` group gets the tree's `memory.max` when the memory controller is available;
    /// without it the tree runs unlimited (logged), as the limit is documented best-effort.
    pub fn create_child(
        &self,
        project: &str,
        group: &crate::spec::SpawnGroup,
    ) -> Option<UnitCgroup> {
        let rel = format!("{}{SPAWN_GROUP_SUFFIX}/{}", group.service, group.child);
        let cg = self.create(project, &rel)?;
        if let (Some(bytes), Some(tree)) = (group.memory_max, cg.dir.parent()) {
            let limits = CgroupLimits {
                memory_max: Some(Size::Value(bytes)),
                cpu_max: None,
            };
            if let Err(e) = set_limits(tree, &limits) {
                tracing::warn!(
                    "{}: spawn.limits.total_memory not enforced: {e}",
                    group.service
                );
            }
        }
        Some(cg)
    }

    /// Create (or reuse) the cgroup of `project`/`service`: under our own cgroup first, else as
    /// a sibling of it. `None` when neither is writable.
    pub fn create(&self, project: &str, service: &str) -> Option<UnitCgroup> {
        let group = format!("sysg-{project}{}", self.instance);
        for base in self.bases() {
            let dir = base.join(&group).join(service);
            let fresh = !dir.exists();
            if fs::create_dir_all(&dir).is_err() {
                continue;
            }
            // Leftovers of an earlier instance that nobody adopted must not share the new one's
            // cgroup.
            if !procs(&dir).is_empty() {
                let _ = kill(&dir);
            }
            match OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
            {
                Ok(procs) => return Some(UnitCgroup { dir, procs, fresh }),
                Err(_) => {
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
        None
    }
}

/// The group of unit cgroups a unit cgroup `dir` belongs to (`sysg-<project>-<hash>`): its
/// parent, or its grandparent for a spawned child's (`<service>@spawn/<child>`).
pub fn group_of(dir: &Path) -> Option<PathBuf> {
    let parent = dir.parent()?;
    let spawn_group = parent
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(SPAWN_GROUP_SUFFIX));
    if spawn_group {
        parent.parent().map(Path::to_path_buf)
    } else {
        Some(parent.to_path_buf())
    }
}

/// Whether `dir` is a systemd scope's cgroup (`….scope`), not one this backend made.
pub fn is_scope(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".scope"))
}

/// Remove the cgroup `dir` and the cgroups below it, deepest first, where they are empty (the
/// kernel refuses to remove a cgroup that still has processes or children).
pub fn remove_empty_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// `-<hash of the run directory>`: stable across supervisor restarts (FNV-1a), so a new
/// supervisor finds the same path, and different for two projects that share a name.
pub fn instance_suffix(run_dir: &Path) -> String {
    format!("-{:08x}", crate::runtime::paths::fnv32(run_dir))
}

/// The name of a project instance's group of unit cgroups (`sysg-<project>-<hash>`); also the
/// prefix of its units' marker, so leftovers of the instance can be found without a cgroup.
pub fn group_name(project: &str, run_dir: &Path) -> String {
    format!("sysg-{project}{}", instance_suffix(run_dir))
}

/// Mount point of the cgroup2 hierarchy in a mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mount_point = left.split(' ').nth(4)?;
        Some(PathBuf::from(unescape_octal(mount_point)))
    })
}

/// The unified-hierarchy path (`0::/path`) in a /proc/PID/cgroup text.
pub fn own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end_matches(" (deleted)").to_string())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Pids in the cgroup (empty when it is gone).
pub fn procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether any process is left in the cgroup or below it (`populated` of `cgroup.events`);
/// a cgroup that is gone or unreadable is empty.
pub fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|t| {
        t.lines().any(|l| {
            l.split_once(' ')
                .is_some_and(|(k, v)| k == "populated" && v.trim() != "0")
        })
    })
}

/// SIGKILL everything in the cgroup: `cgroup.kill` (Linux 5.14+), else each listed pid until
/// the cgroup stays empty.
pub fn kill(dir: &Path) -> io::Result<()> {
    let write_kill = OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut f| f.write_all(b"1"));
    if write_kill.is_ok() {
        return Ok(());
    }
    // Without cgroup.kill, a process may fork between the read and the kill: repeat a few times.
    for _ in 0..16 {
        let pids = procs(dir);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = crate::os::signal::send_signal(pid, libc::SIGKILL);
        }
    }
    Ok(())
}

/// Write `memory.max` / `cpu.max`, enabling the controllers in the parent first.
pub fn set_limits(dir: &Path, limits: &CgroupLimits) -> Result<(), String> {
    let mut settings = Vec::new();
    if let Some(m) = limits.memory_max {
        let v = match m {
            Size::Value(n) => n.to_string(),
            Size::Unlimited => "max".to_string(),
        };
        settings.push(("memory", "memory.max", v));
    }
    if let Some(c) = limits.cpu_max {
        let quota = c.quota_us.map_or("max".to_string(), |q| q.to_string());
        settings.push(("cpu", "cpu.max", format!("{quota} {}", c.period_us)));
    }
    for (controller, file, value) in settings {
        let path = dir.join(file);
        if !path.exists() {
            if let Some(parent) = dir.parent() {
                let _ = fs::write(
                    parent.join("cgroup.subtree_control"),
                    format!("+{controller}"),
                );
            }
        }
        fs::write(&path, &value).map_err(|e| {
            format!(
                "writing {value} to {} (is the {controller} controller available?): {e}",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Remove an empty unit cgroup (and its `sysg-<project>` parent when that is empty too);
/// `false` while it still has (dying) processes.
pub fn remove(dir: &Path) -> bool {
    // A transient scope's cgroup is its service manager's to remove.
    if is_scope(dir) {
        return !populated(dir);
    }
    let removed = match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    if removed {
        // A spawned child's cgroup sits one level deeper, in its tree's `@spawn` group.
        let mut dir = dir;
        if let Some(tree) = dir.parent().filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SPAWN_GROUP_SUFFIX))
        }) {
            if fs::remove_dir(tree).is_err() {
                return true;
            }
            dir = tree;
        }
        if let Some(parent) = dir.parent() {
            let is_ours = parent
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sysg-"));
            if is_ours {
                let _ = fs::remove_dir(parent);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_mountinfo() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let text =
            "29 23 0:26 / /sys/fs/cgroup\\040x rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(text), Some(PathBuf::from("/sys/fs/cgroup x")));
        assert_eq!(cgroup2_mount("1 2 3 / /x rw - ext4 /dev/sda rw\n"), None);
    }

    #[test]
    fn own_cgroup_line() {
        let text = "4:memory:/a/b\n0::/user.slice/x.scope\n";
        assert_eq!(own_cgroup(text).as_deref(), Some("/user.slice/x.scope"));
        assert_eq!(own_cgroup("1:cpu:/\n"), None);
    }
}
