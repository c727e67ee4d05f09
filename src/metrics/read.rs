//! Reading a unit's counters from its cgroup v2 or from /proc.

use std::fs;
use std::path::{Path, PathBuf};

use super::MetricsError;

/// Raw counters of a unit at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Cumulative CPU time, microseconds.
    pub cpu_usec: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// The processes counted.
    pub pids: Vec<u32>,
}

/// A process tree larger than this is not walked further: sampling must stay cheap.
const MAX_TREE: usize = 4096;

fn read(path: &Path) -> Result<String, MetricsError> {
    fs::read_to_string(path).map_err(|source| MetricsError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Where the cgroup2 hierarchy is mounted, from the text of /proc/self/mountinfo.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The cgroup2 mount point of this system (usually /sys/fs/cgroup).
pub fn detect_cgroup2_mount() -> Option<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| cgroup2_mount(&t))
}

/// The cgroup2 path (relative to the mount) from the text of /proc/PID/cgroup.
pub fn cgroup_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
}

/// The cgroup directory of `pid` when it is the unit's own, i.e. its last component is
/// `unit_name` (a systemd unit); a process that shares its parent's cgroup is measured
/// through /proc instead.
pub fn own_unit_cgroup(pid: u32, mount: &Path, unit_name: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = cgroup_path(&text)?;
    if rel.rsplit('/').next()? != unit_name {
        return None;
    }
    let dir = mount.join(rel.trim_start_matches('/'));
    dir.join("cpu.stat").is_file().then_some(dir)
}

/// `usage_usec` from the text of a cgroup's cpu.stat.
pub fn parse_cpu_stat(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// Read a unit's cgroup: CPU from `cpu.stat`, memory from `memory.current` (or the resident
/// sets of its processes when the memory controller is not enabled there).
pub fn cgroup(dir: &Path, sys: &SysInfo) -> Result<Reading, MetricsError> {
    let stat_path = dir.join("cpu.stat");
    let cpu_usec = parse_cpu_stat(&read(&stat_path)?)
        .ok_or_else(|| MetricsError::Parse(stat_path.display().to_string()))?;
    let pids: Vec<u32> = read(&dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let memory_bytes = match fs::read_to_string(dir.join("memory.current")) {
        Ok(t) => t
            .trim()
            .parse()
            .map_err(|_| MetricsError::Parse(dir.join("memory.current").display().to_string()))?,
        Err(_) => pids.iter().filter_map(|p| rss(*p, sys)).sum(),
    };
    Ok(Reading {
        cpu_usec,
        memory_bytes,
        pids,
    })
}

/// Constants of this system needed to turn /proc numbers into units.
#[derive(Debug, Clone, Copy)]
pub struct SysInfo {
    /// Clock ticks per second (`utime` and friends are in ticks).
    pub ticks_per_sec: u64,
    /// Bytes per page (`statm` counts pages).
    pub page_size: u64,
}

impl SysInfo {
    /// Ask the system.
    pub fn detect() -> SysInfo {
        // SAFETY: sysconf has no preconditions; it only reads configuration values.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        SysInfo {
            ticks_per_sec: u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100),
            page_size: u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096),
        }
    }
}

/// CPU ticks of a process from the text of /proc/PID/stat: its own `utime + stime` plus
/// `cutime + cstime` of the children it has reaped, so that work done by short-lived children
/// (a shell running commands) is not lost when they exit.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    crate::os::procfs::parse_stat(text).map(|s| s.cpu_ticks)
}

fn rss(pid: u32, sys: &SysInfo) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * sys.page_size)
}

/// Direct children of `pid` (every thread's), from /proc/PID/task/*/children.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Sum the live process tree under `pid`.
pub fn tree(pid: u32, sys: &SysInfo) -> Result<Reading, MetricsError> {
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() && pids.len() < MAX_TREE {
        let kids = children(pids[i]);
        for k in kids {
            if !pids.contains(&k) {
                pids.push(k);
            }
        }
        i += 1;
    }
    let mut ticks = 0u64;
    let mut memory_bytes = 0u64;
    let mut seen = Vec::with_capacity(pids.len());
    for p in pids {
        // A process may exit between listing and reading; it simply is not counted.
        let Ok(text) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(t) = parse_stat_ticks(&text) else {
            continue;
        };
        ticks += t;
        memory_bytes += rss(p, sys).unwrap_or(0);
        seen.push(p);
    }
    if !seen.contains(&pid) {
        return Err(MetricsError::Gone(pid));
    }
    Ok(Reading {
        cpu_usec: ticks.saturating_mul(1_000_000) / sys.ticks_per_sec.max(1),
        memory_bytes,
        pids: seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "24 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
                  29 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            cgroup2_mount("24 30 0:22 / /sys rw - sysfs sysfs rw\n"),
            None
        );
    }

    #[test]
    fn parses_counters() {
        assert_eq!(
            cgroup_path("0::/user.slice/sysg-p.slice/sysg-p-web.service\n"),
            Some("/user.slice/sysg-p.slice/sysg-p-web.service")
        );
        assert_eq!(cgroup_path("1:name=systemd:/x\n"), None);
        assert_eq!(
            parse_cpu_stat("usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\n"),
            Some(12345)
        );
        assert_eq!(parse_cpu_stat("nr_periods 0\n"), None);
        let stat = "42 (we ird) name) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 999 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(13));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_our_own_process_tree() {
        let sys = SysInfo::detect();
        let me = std::process::id();
        let r = tree(me, &sys).expect("own tree");
        assert!(r.pids.contains(&me));
        assert!(r.memory_bytes > 0);
        assert!(matches!(
            tree(u32::MAX - 1, &sys),
            Err(MetricsError::Gone(_))
        ));
    }
}
