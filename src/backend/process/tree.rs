//! The processes of a unit and how to signal all of them.
//!
//! With a cgroup, the unit is exactly the pids in its `cgroup.procs`. Without one, the unit is:
//! its process group and session (the main process called `setsid`, so both ids are its pid),
//! plus every process whose initial environment carries the unit's `SYSG_UNIT_ID` marker and
//! whose parent is this supervisor (a subreaper: orphans of the unit reparent to it) or init,
//! plus all descendants (by PPid) of those. Limit of the fallback: a process that leaves the
//! session *and* clears or rewrites its environment *and* is orphaned (reparented to us, to
//! pid 1 or to another subreaper, so no longer below a process found otherwise) is not found:
//! nothing left ties it to its unit (tests/reliability.rs keeps such a process out of the
//! fallback's hostile tree; with a cgroup it is found).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::{cgroup, procfs};
/// `kill(2)` by pid (the ground floor's; the backend's callers name it here).
pub use crate::os::signal::send_signal;

/// Name of the environment variable that marks a unit's processes.
pub const MARKER_VAR: &str = "SYSG_UNIT_ID";

/// How the processes of one unit are found.
#[derive(Debug, Clone)]
pub enum Membership<'a> {
    Cgroup(&'a Path),
    Group {
        main: u32,
        pgid: u32,
        marker: &'a str,
    },
}

/// `killpg(2)`.
pub fn send_group_signal(pgid: u32, sig: i32) -> io::Result<()> {
    let pgid =
        libc::pid_t::try_from(pgid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: killpg(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::killpg(pgid, sig) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `pidfd_send_signal(2)`: signals exactly the process the pidfd refers to, never a reused pid.
pub fn pidfd_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: the syscall reads only its integer arguments; the siginfo pointer is null, which
    // the kernel documents as "behave like kill(2)".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Signal one process identified by pid and start time, through a pidfd so that a pid reused
/// between the /proc scan and the signal is never hit.
pub(crate) fn signal_checked(pid: u32, start_time: u64, sig: i32) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    if procfs::proc_start_time(pid) == Some(start_time) {
        let _ = pidfd_signal(&fd, sig);
    }
}

/// Processes whose unit marker starts with `prefix` (`<group>/`), by unit name: what earlier
/// supervisors of the same project instance left running. Only processes whose environment we
/// can read (our own user, or anyone as root) are found.
pub fn marked_processes(prefix: &str) -> HashMap<String, Vec<procfs::Stat>> {
    let me = std::process::id();
    let mut out: HashMap<String, Vec<procfs::Stat>> = HashMap::new();
    for s in procfs::all() {
        if s.pid == me || s.state == b'Z' {
            continue;
        }
        let Some(marker) = procfs::environ_value(s.pid, MARKER_VAR) else {
            continue;
        };
        let Some(unit) = marker
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('/').next())
        else {
            continue;
        };
        out.entry(unit.to_string()).or_default().push(s);
    }
    out
}

/// The unit's processes found by the fallback rules (see the module comment), from a /proc scan.
pub fn group_members(main: u32, pgid: u32, marker: &str) -> Vec<procfs::Stat> {
    let me = std::process::id();
    let all = procfs::all();
    let entry = format!("{MARKER_VAR}={marker}");
    let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, s) in all.iter().enumerate() {
        children.entry(s.ppid).or_default().push(i);
    }
    let mut selected: HashSet<u32> = HashSet::new();
    let mut stack: Vec<usize> = Vec::new();
    for (i, s) in all.iter().enumerate() {
        if s.pid == me || s.pid == 1 {
            continue;
        }
        let root = s.pid == main
            || (pgid > 1 && (s.pgrp == pgid || s.session == pgid))
            || ((s.ppid == me || s.ppid == 1) && procfs::environ_contains(s.pid, &entry));
        if root && selected.insert(s.pid) {
            stack.push(i);
        }
    }
    while let Some(i) = stack.pop() {
        if let Some(kids) = children.get(&all[i].pid) {
            for &k in kids {
                let pid = all[k].pid;
                if pid != me && selected.insert(pid) {
                    stack.push(k);
                }
            }
        }
    }
    all.into_iter()
        .filter(|s| selected.contains(&s.pid) && s.state != b'Z')
        .collect()
}

/// Send `sig` to every process of the unit. `Ok(false)` when none was found.
pub fn signal_all(members: &Membership<'_>, sig: i32) -> bool {
    match members {
        Membership::Cgroup(dir) => {
            let pids = cgroup::procs(dir);
            for &pid in &pids {
                let _ = send_signal(pid, sig);
            }
            !pids.is_empty()
        }
        Membership::Group { main, pgid, marker } => {
            let group_ok = send_group_signal(*pgid, sig).is_ok();
            let found = group_members(*main, *pgid, marker);
            for s in &found {
                // Without the group (a main process not yet in its own session when the group
                // signal went out) every member is signalled one by one.
                if !group_ok || s.pgrp != *pgid {
                    signal_checked(s.pid, s.start_time, sig);
                }
            }
            group_ok || !found.is_empty()
        }
    }
}

/// SIGKILL every process of the unit.
pub fn kill_all(members: &Membership<'_>) {
    match members {
        Membership::Cgroup(dir) => {
            let _ = cgroup::kill(dir);
        }
        Membership::Group { .. } => {
            // A process may fork while we scan: repeat until a scan finds nothing new alive.
            for _ in 0..8 {
                if !signal_all(members, libc::SIGKILL) {
                    break;
                }
                let Membership::Group { main, pgid, marker } = members else {
                    break;
                };
                if group_members(*main, *pgid, marker).is_empty() {
                    break;
                }
            }
        }
    }
}
