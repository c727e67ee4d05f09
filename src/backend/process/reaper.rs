//! Exit detection and reaping: one thread, one epoll over
//! - the pidfd of every unit's main process (token = pid),
//! - the report pipe of a new main process until its exec is confirmed (token = pid |
//!   `REPORT_TOKEN`),
//! - the read end of a self-pipe written by a SIGCHLD handler (orphans to reap),
//! - `cgroup.events` of each killed unit cgroup that is not empty yet (removed once it is),
//! - an eventfd that asks the thread to stop.
//!
//! Main processes are reaped only through their own pidfd (`waitid(P_PIDFD)`), after the pidfd
//! became readable, so their exit status is never lost. The supervisor is a child subreaper, so
//! orphaned descendants of the units reparent to it; they are reaped on SIGCHLD (and after every
//! main exit) by listing our children and reaping, one pid at a time with `waitpid(pid,
//! WNOHANG)`, those that are zombies, are not a registered main process, and are not in our
//! own session. The session rule leaves alone children that other code of the supervisor
//! spawns and waits for itself (probes, hooks: they stay in our session, while every unit
//! process lives in a session of its own). A SIGCHLD *handler* feeding a pipe is used instead of
//! a signalfd because a signalfd needs SIGCHLD blocked in every thread of the process, which a
//! library cannot guarantee; the handler works whatever thread receives the signal.
//!
//! `SPAWN_LOCK` holds the pids of all registered main processes (of every backend in the
//! process); `start` holds it across fork+registration, so no orphan sweep can reap a new main
//! process before it is registered, nor the failed child that std reaps itself after a failed
//! exec.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use rustix::process::{WaitId, WaitIdOptions};

use super::output::Output;
use super::{cgroup, procfs, tree, Units};
use crate::backend::{BackendError, BackendEvent, EventSink};
use crate::spec::ExitStatus;

const TOKEN_STOP: u64 = u64::MAX;
const TOKEN_SIGCHLD: u64 = u64::MAX - 1;
/// Or-ed with a pid: the report pipe of that unit's child (readable or closed).
pub const REPORT_TOKEN: u64 = 1 << 32;
/// Or-ed with a sequence number: `cgroup.events` of a unit cgroup waiting to be empty.
const EVENTS_TOKEN: u64 = 1 << 33;

/// Pids of registered main processes, across all backends of this process.
static SPAWN_LOCK: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

/// Lock the registry of main pids.
pub fn main_pids() -> MutexGuard<'static, Option<HashSet<u32>>> {
    SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn register_main(guard: &mut MutexGuard<'static, Option<HashSet<u32>>>, pid: u32) {
    guard.get_or_insert_with(HashSet::new).insert(pid);
}

fn unregister_main(pid: u32) {
    if let Some(set) = main_pids().as_mut() {
        set.remove(&pid);
    }
}

/// Write ends of the SIGCHLD self-pipes, one per live backend; -1 when free.
const SLOTS: usize = 32;
static SIGCHLD_FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
static INSTALL: Once = Once::new();

extern "C" fn on_sigchld(_: libc::c_int) {
    // SAFETY: only async-signal-safe calls (write) and errno save/restore; the fds are
    // non-blocking pipes, a full pipe already means "wake up".
    unsafe {
        let errno = *libc::__errno_location();
        for slot in &SIGCHLD_FDS {
            let fd = slot.load(Ordering::Relaxed);
            if fd >= 0 {
                let b = 1u8;
                libc::write(fd, (&b as *const u8).cast(), 1);
            }
        }
        *libc::__errno_location() = errno;
    }
}

fn install_handler() -> Result<(), BackendError> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        let action = SigAction::new(
            SigHandler::Handler(on_sigchld),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // SAFETY: the handler only calls async-signal-safe functions.
        if let Err(e) = unsafe { sigaction(Signal::SIGCHLD, &action) } {
            result = Err(BackendError::Io {
                context: "installing the SIGCHLD handler".into(),
                source: e.into(),
            });
        }
    });
    result
}

/// The reaper thread's handle, owned by the backend.
pub struct Reaper {
    pub epoll: Arc<Epoll>,
    stop: Arc<EventFd>,
    slot: usize,
    _pipe_write: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    pub fn start(
        units: Arc<Mutex<Units>>,
        sink: EventSink,
        output: Output,
    ) -> Result<Reaper, BackendError> {
        let nix_err = |context: &'static str| {
            move |e: nix::Error| BackendError::Io {
                context: context.into(),
                source: e.into(),
            }
        };
        nix::sys::prctl::set_child_subreaper(true).map_err(nix_err("PR_SET_CHILD_SUBREAPER"))?;
        install_handler()?;
        let epoll =
            Arc::new(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(nix_err("epoll_create"))?);
        let stop = Arc::new(
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .map_err(nix_err("eventfd"))?,
        );
        let (pipe_read, pipe_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(nix_err("pipe2"))?;
        epoll
            .add(
                stop.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_STOP),
            )
            .map_err(nix_err("epoll_ctl"))?;
        epoll
            .add(
                pipe_read.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGCHLD),
            )
            .map_err(nix_err("epoll_ctl"))?;
        let slot = SIGCHLD_FDS
            .iter()
            .position(|s| {
                s.compare_exchange(
                    -1,
                    pipe_write.as_raw_fd(),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            })
            .ok_or_else(|| BackendError::Other("too many process backends".into()))?;
        let mut state = Loop {
            epoll: epoll.clone(),
            stop: stop.clone(),
            pipe: pipe_read,
            units,
            sink,
            output,
            pending_rmdir: HashMap::new(),
            rmdir_seq: 0,
        };
        let thread = std::thread::Builder::new()
            .name("sysg-reaper".into())
            .spawn(move || state.run());
        let thread = match thread {
            Ok(t) => t,
            Err(source) => {
                SIGCHLD_FDS[slot].store(-1, Ordering::SeqCst);
                return Err(BackendError::Io {
                    context: "starting the reaper thread".into(),
                    source,
                });
            }
        };
        Ok(Reaper {
            epoll,
            stop,
            slot,
            _pipe_write: pipe_write,
            thread: Some(thread),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        SIGCHLD_FDS[self.slot].store(-1, Ordering::SeqCst);
    }
}

struct Loop {
    epoll: Arc<Epoll>,
    stop: Arc<EventFd>,
    pipe: OwnedFd,
    units: Arc<Mutex<Units>>,
    sink: EventSink,
    output: Output,
    /// Unit cgroups killed but not yet empty, by token: each one's `cgroup.events` is watched
    /// (the kernel signals a change of `populated`), and it is removed once empty.
    pending_rmdir: HashMap<u64, (PathBuf, std::fs::File)>,
    rmdir_seq: u64,
}

impl Loop {
    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    tracing::error!("reaper epoll: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                match ev.data() {
                    TOKEN_STOP => {
                        let _ = self.stop.read();
                        return;
                    }
                    TOKEN_SIGCHLD => self.drain_pipe(),
                    t if t & REPORT_TOKEN != 0 => self.report_ready(t as u32),
                    t if t & EVENTS_TOKEN != 0 => self.cgroup_changed(t),
                    pid => self.main_exited(pid as u32),
                }
            }
            reap_orphans();
        }
    }

    fn drain_pipe(&self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = nix::unistd::read(self.pipe.as_fd(), &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }

    /// Remove the killed unit cgroup `dir` once its last process is gone: watch its
    /// `cgroup.events` (no polling). If it cannot be watched, one more try is all it gets.
    fn watch_until_empty(&mut self, dir: &std::path::Path) {
        let Ok(events) = std::fs::File::open(dir.join("cgroup.events")) else {
            cgroup::remove(dir);
            return;
        };
        self.rmdir_seq += 1;
        let token = EVENTS_TOKEN | self.rmdir_seq;
        let watched = self.epoll.add(
            events.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLPRI | EpollFlags::EPOLLERR, token),
        );
        // It may have emptied before the watch began.
        if cgroup::remove(dir) {
            let _ = self.epoll.delete(events.as_fd());
            return;
        }
        if watched.is_ok() {
            self.pending_rmdir
                .insert(token, (dir.to_path_buf(), events));
        }
    }

    /// A watched cgroup's `cgroup.events` changed: remove the cgroup if it is empty now.
    fn cgroup_changed(&mut self, token: u64) {
        // Under the lock: `start` may be creating a cgroup in the same parent.
        let _units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        let removed = match self.pending_rmdir.get(&token) {
            Some((dir, _)) => cgroup::remove(dir),
            None => return,
        };
        if removed {
            if let Some((_, events)) = self.pending_rmdir.remove(&token) {
                let _ = self.epoll.delete(events.as_fd());
            }
        }
    }

    /// The report pipe of the child `pid` is readable or closed: either its exec succeeded
    /// (end of file: nothing more to wait for) or a step failed (kept for its exit).
    fn report_ready(&mut self, pid: u32) {
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        let Some(unit) = units.by_pid.get(&pid).cloned() else {
            return;
        };
        let Some(entry) = units.map.get_mut(&unit) else {
            return;
        };
        if let Some(p) = entry.pending.take() {
            let _ = self.epoll.delete(p.report.as_fd());
            entry.failure = p.failure();
        }
    }

    /// The pidfd of `pid` is readable: collect the status, kill the rest of the tree, report.
    fn main_exited(&mut self, pid: u32) {
        let event = {
            let units_arc = self.units.clone();
            let mut units = units_arc.lock().unwrap_or_else(|e| e.into_inner());
            let Some(unit) = units.by_pid.remove(&pid) else {
                return;
            };
            let Some(mut entry) = units.map.remove(&unit) else {
                return;
            };
            let _ = self.epoll.delete(entry.pidfd.as_fd());
            if let Some(p) = entry.pending.take() {
                let _ = self.epoll.delete(p.report.as_fd());
                entry.failure = p.failure();
            }
            let status = match rustix::process::waitid(
                WaitId::PidFd(entry.pidfd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(st)) => match (st.exit_status(), st.terminating_signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(sig)) => ExitStatus::Signal(sig),
                    _ => ExitStatus::Unknown,
                },
                // Not our child (adopted after a supervisor restart).
                _ => ExitStatus::Unknown,
            };
            unregister_main(pid);
            // Still under the lock, so that a new instance of the unit cannot be started into
            // the cgroup being killed.
            tree::kill_all(&entry.membership());
            if let Some(dir) = &entry.cgroup {
                if !cgroup::remove(dir) {
                    self.watch_until_empty(dir);
                }
            }
            match entry.failure.take() {
                Some(error) => BackendEvent::ExecFailed {
                    unit: entry.unit.clone(),
                    pid,
                    error,
                },
                None => BackendEvent::Exited {
                    unit: entry.unit.clone(),
                    pid,
                    status,
                },
            }
        };
        if let BackendEvent::Exited { unit, .. } | BackendEvent::ExecFailed { unit, .. } = &event {
            // Streams are named by service (a deployment's candidate logs as its service).
            self.output.unit_exited(crate::spec::service_of(unit));
        }
        (self.sink)(event);
    }
}

/// Reap zombie children that are not main processes and not in our own session.
pub fn reap_orphans() {
    let guard = main_pids();
    // SAFETY: getsid(0) only reads the calling process's session id.
    let my_sid = unsafe { libc::getsid(0) };
    for pid in procfs::own_children() {
        if guard.as_ref().is_some_and(|s| s.contains(&pid)) {
            continue;
        }
        let Some(st) = procfs::stat(pid) else {
            continue;
        };
        if st.state == b'Z' && i64::from(st.session) != i64::from(my_sid) {
            let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
        }
    }
}
