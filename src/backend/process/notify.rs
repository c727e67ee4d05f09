//! The process backend's `sd_notify` socket (issue 17): an `AF_UNIX` datagram socket owned by
//! the supervisor, named to every `readiness: notify` service in `NOTIFY_SOCKET`. It is bound
//! under an abstract name (reachable by a service of any user: a path in the 0700 run
//! directory is not) and as `run_dir/notify.sock` (for services in a network namespace of
//! their own, which an abstract name does not reach).
//!
//! A thread blocks in `recvmsg` (event-driven: nothing polls) and, for each datagram, learns
//! the sender's pid from `SCM_CREDENTIALS` (`SO_PASSCRED`: the kernel vouches for it), finds
//! the running unit that process belongs to (its cgroup, or its process group, session or
//! marker, as the backend's own kill sweep does), parses the message and hands it to the
//! runtime as `BackendEvent::Notify`. What it ignores, with a debug line: datagrams larger
//! than `MAX_DATAGRAM` (as systemd does), text that is no notification, senders that belong
//! to no unit, and anything beyond `RATE` messages a second from one process (a flooding
//! service cannot bury the supervisor's event loop).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use nix::sys::socket::{
    bind, recvmsg, sendto, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};

use super::{cgroup, procfs, tree, Units};
use crate::backend::{BackendError, BackendEvent};
use crate::core::NotifyMessage;
use crate::spec::UnitSpec;

/// Largest datagram read (systemd reads 4 KiB); a longer one is dropped whole.
pub const MAX_DATAGRAM: usize = 4096;

/// Messages a second one process may send before the rest of that second is dropped.
pub const RATE: u32 = 200;

/// Processes tracked for the rate limit before the table is started afresh.
const MAX_TRACKED: usize = 4096;

/// One bound socket and its reader thread.
struct Listener {
    /// What services get in `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    address: String,
    /// The socket file, for a path socket.
    path: Option<PathBuf>,
    addr: UnixAddr,
    thread: Option<JoinHandle<()>>,
}

/// The sockets (one in the run directory, one abstract) and their reader threads.
pub struct NotifySocket {
    /// `run_dir/notify.sock`: reachable from another network namespace (`isolation.network`),
    /// but only for users who may enter the run directory. `None` when the path is too long.
    path: Option<Listener>,
    /// An abstract name: reachable by a service of any user (the credentials decide who is
    /// heard), within the supervisor's network namespace.
    abstract_: Option<Listener>,
    stop: Arc<AtomicBool>,
}

/// Where events go (the backend's sink, shared with the reaper).
pub type Sink = Arc<dyn Fn(BackendEvent) + Send + Sync>;

impl NotifySocket {
    /// Bind `run_dir/notify.sock` and an abstract socket named after the project instance,
    /// and start their readers; fails only when neither could be bound.
    pub fn start(
        run_dir: &Path,
        units: Arc<Mutex<Units>>,
        sink: Sink,
    ) -> Result<NotifySocket, BackendError> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = run_dir.join("notify.sock");
        let by_path = UnixAddr::new(&path)
            .ok()
            .map(|a| (a, path.display().to_string(), Some(path)));
        let name = format!("sysg-notify-{}", cgroup::group_name("n", run_dir));
        let by_name = UnixAddr::new_abstract(name.as_bytes())
            .ok()
            .map(|a| (a, format!("@{name}"), None));
        let mut bound = [by_path, by_name]
            .into_iter()
            .flatten()
            .map(|(addr, address, path)| listen(addr, address, path, &units, &sink, &stop));
        let (first, second) = (bound.next(), bound.next());
        let mut sock = NotifySocket {
            path: None,
            abstract_: None,
            stop,
        };
        let mut last_err = None;
        for l in [first, second].into_iter().flatten() {
            match l {
                Ok(l) if l.path.is_some() => sock.path = Some(l),
                Ok(l) => sock.abstract_ = Some(l),
                Err(e) => {
                    tracing::warn!("{e}");
                    last_err = Some(e);
                }
            }
        }
        match (&sock.path, &sock.abstract_, last_err) {
            (None, None, Some(e)) => Err(e),
            (None, None, None) => Err(BackendError::Other("notify socket: no address".into())),
            _ => Ok(sock),
        }
    }

    /// `spec` with what a notify service gets in its environment: `NOTIFY_SOCKET` (the
    /// abstract socket, or the path for a service in a network namespace of its own), and
    /// `WATCHDOG_USEC` when it has a watchdog. `None` for other services.
    pub fn child_spec(&self, spec: &UnitSpec) -> Option<UnitSpec> {
        if !spec.readiness.notify {
            return None;
        }
        let prefer_path = spec.isolation.network;
        let l = if prefer_path {
            self.path.as_ref().or(self.abstract_.as_ref())
        } else {
            self.abstract_.as_ref().or(self.path.as_ref())
        }?;
        let mut s = spec.clone();
        s.env.push(("NOTIFY_SOCKET".into(), l.address.clone()));
        if let Some(w) = spec.readiness.watchdog {
            s.env
                .push(("WATCHDOG_USEC".into(), w.as_micros().to_string()));
        }
        Some(s)
    }
}

/// Bind one socket with `SO_PASSCRED` and start its reader.
fn listen(
    addr: UnixAddr,
    address: String,
    path: Option<PathBuf>,
    units: &Arc<Mutex<Units>>,
    sink: &Sink,
    stop: &Arc<AtomicBool>,
) -> Result<Listener, BackendError> {
    let err = |what: &str, e: nix::Error| {
        BackendError::Other(format!("notify socket {address}: {what}: {e}"))
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| err("socket", e))?;
    setsockopt(&fd, sockopt::PassCred, &true).map_err(|e| err("SO_PASSCRED", e))?;
    if let Some(p) = &path {
        let _ = std::fs::remove_file(p);
    }
    bind(fd.as_raw_fd(), &addr).map_err(|e| err("bind", e))?;
    if let Some(p) = &path {
        // Services may run as other users; only their credentials decide who is heard.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666));
    }
    let (units, sink, stop) = (units.clone(), sink.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("sysg-notify".into())
        .spawn(move || read_loop(&fd, &stop, &units, &sink))
        .map_err(|e| BackendError::Other(format!("notify socket thread: {e}")))?;
    Ok(Listener {
        address,
        path,
        addr,
        thread: Some(thread),
    })
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for l in [self.path.as_mut(), self.abstract_.as_mut()]
            .into_iter()
            .flatten()
        {
            // Wake the reader with a datagram of our own.
            if let Ok(tx) = socket(
                AddressFamily::Unix,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            ) {
                let _ = sendto(tx.as_raw_fd(), b"", &l.addr, MsgFlags::empty());
            }
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
            if let Some(p) = &l.path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Per-process budget: the second it counts in, and messages taken in it.
#[derive(Default)]
struct Budget {
    window: Option<Instant>,
    used: u32,
    dropped: u64,
}

fn read_loop(fd: &OwnedFd, stop: &AtomicBool, units: &Mutex<Units>, sink: &Sink) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut budgets: HashMap<u32, Budget> = HashMap::new();
    loop {
        let mut cmsg = nix::cmsg_space!(libc::ucred);
        let (len, truncated, pid) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut pid = None;
                    for m in msg.cmsgs().into_iter().flatten() {
                        match m {
                            ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                            // FDSTORE=1 is not supported: never keep a descriptor sent along
                            // (the buffer has no room for any, but be sure).
                            ControlMessageOwned::ScmRights(fds) => {
                                for fd in fds {
                                    // SAFETY: the kernel just installed `fd` in this process
                                    // for us; nothing else knows it, so closing it is sound.
                                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                                }
                            }
                            _ => {}
                        }
                    }
                    (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC), pid)
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("notify socket: recvmsg: {e}; no more notifications");
                    return;
                }
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(pid) = pid.and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0) else {
            tracing::debug!("notify socket: a datagram without credentials, ignored");
            continue;
        };
        if truncated || len > MAX_DATAGRAM {
            tracing::debug!(
                pid,
                "notify socket: a datagram over {MAX_DATAGRAM} bytes, ignored"
            );
            continue;
        }
        if !within_budget(&mut budgets, pid, Instant::now()) {
            continue;
        }
        let Some(message) = NotifyMessage::parse(&buf[..len]) else {
            tracing::debug!(pid, "notify socket: not a notification, ignored");
            continue;
        };
        let Some(unit) = unit_of(units, pid) else {
            tracing::debug!(
                pid,
                "notify socket: sender belongs to no running unit, ignored"
            );
            continue;
        };
        sink(BackendEvent::Notify { unit, pid, message });
    }
}

/// Take one message of `pid`'s budget for the current second.
fn within_budget(budgets: &mut HashMap<u32, Budget>, pid: u32, now: Instant) -> bool {
    if budgets.len() >= MAX_TRACKED && !budgets.contains_key(&pid) {
        budgets.clear();
    }
    let b = budgets.entry(pid).or_default();
    if b.window
        .is_none_or(|w| now.duration_since(w).as_secs() >= 1)
    {
        if b.dropped > 0 {
            tracing::debug!(pid, dropped = b.dropped, "notify socket: flood from pid");
        }
        *b = Budget {
            window: Some(now),
            ..Budget::default()
        };
    }
    if b.used >= RATE {
        b.dropped += 1;
        return false;
    }
    b.used += 1;
    true
}

/// The running unit `pid` belongs to: in its cgroup, or (without one) its main process, in
/// its process group or session, or carrying its marker.
fn unit_of(units: &Mutex<Units>, pid: u32) -> Option<String> {
    let stat = procfs::stat(pid)?;
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| cgroup::own_cgroup(&t));
    let marker = procfs::environ_value(pid, tree::MARKER_VAR);
    let units = units.lock().unwrap_or_else(|e| e.into_inner());
    units
        .map
        .values()
        .find(|e| match &e.cgroup {
            Some(dir) => cg.as_deref().is_some_and(|c| in_cgroup(dir, c)),
            None => {
                pid == e.pid
                    || (e.pgid > 1 && (stat.pgrp == e.pgid || stat.session == e.pgid))
                    || marker.as_deref() == Some(e.marker.as_str())
            }
        })
        .map(|e| e.unit.clone())
}

/// Whether the cgroup `rel` (as /proc/PID/cgroup writes it: `/a/b`) is the unit's cgroup
/// directory `dir` (`<mount>/a/b`) or below it.
fn in_cgroup(dir: &Path, rel: &str) -> bool {
    let rel = Path::new(rel.trim_start_matches('/'));
    rel.ancestors()
        .filter(|a| a.as_os_str().as_bytes().contains(&b'/'))
        .any(|a| dir.ends_with(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_membership_is_the_unit_dir_or_below() {
        let dir = Path::new("/sys/fs/cgroup/sysg/p-1/web");
        assert!(in_cgroup(dir, "/sysg/p-1/web"));
        assert!(in_cgroup(dir, "/sysg/p-1/web/sub"));
        assert!(!in_cgroup(dir, "/sysg/p-1/db"));
        assert!(!in_cgroup(dir, "/sysg/p-1"));
        assert!(!in_cgroup(dir, "/web"));
    }

    #[test]
    fn a_flood_is_cut_at_the_rate_per_process_and_second() {
        let mut b = HashMap::new();
        let t = Instant::now();
        let passed = (0..1000).filter(|_| within_budget(&mut b, 7, t)).count();
        assert_eq!(passed, RATE as usize);
        assert!(
            within_budget(&mut b, 8, t),
            "another process has its own budget"
        );
        assert!(within_budget(
            &mut b,
            7,
            t + std::time::Duration::from_secs(1)
        ));
    }
}
