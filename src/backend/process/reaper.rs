//! Exit detection and reaping: one thread, one epoll over
//! - the pidfd of every unit's main process (token = pid),
//! - the report pipe of a new main process until its exec is confirmed (token = pid |
//!   `REPORT_TOKEN`),
//! - the read end of a self-pipe written by a SIGCHLD handler (orphans to reap),
//! - `cgroup.events` of each unit cgroup being drained or removed (its `populated` changes),
//! - an eventfd that asks the thread to stop.
//!
//! A main process ending does not end its unit: when other processes of the unit remain, the
//! entry stays (so that they can be signalled and killed), `MainExited` is reported (the core
//! sends the stop signal and decides when to kill), and `Exited` follows once the unit is
//! empty: with a cgroup when `cgroup.events` says `populated 0`; without one when a SIGCHLD
//! (the last process of the unit is always reaped by us, the subreaper) finds no member left.
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
use super::tree::Membership;
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
            draining_groups: HashSet::new(),
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
    /// Unit cgroups not yet empty, by token: each one's `cgroup.events` is watched (the kernel
    /// signals a change of `populated`). Once empty it is removed and, for a unit being drained
    /// (the unit named), the unit's end is reported.
    pending_rmdir: HashMap<u64, (PathBuf, std::fs::File, Option<String>)>,
    rmdir_seq: u64,
    /// Units without a cgroup being drained: checked for members left after each SIGCHLD.
    draining_groups: HashSet<String>,
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
            if !self.draining_groups.is_empty() {
                self.check_groups();
            }
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
        self.watch_cgroup(dir, None);
    }

    /// Watch the `cgroup.events` of `dir`; `unit`: the unit being drained in it, whose end is
    /// reported once it is empty (`false` when that cannot be watched: the caller reports it).
    fn watch_cgroup(&mut self, dir: &std::path::Path, unit: Option<String>) -> bool {
        let Ok(events) = std::fs::File::open(dir.join("cgroup.events")) else {
            cgroup::remove(dir);
            return unit.is_none();
        };
        self.rmdir_seq += 1;
        let token = EVENTS_TOKEN | self.rmdir_seq;
        let watched = self.epoll.add(
            events.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLPRI | EpollFlags::EPOLLERR, token),
        );
        if watched.is_err() {
            return unit.is_none();
        }
        self.pending_rmdir
            .insert(token, (dir.to_path_buf(), events, unit));
        // It may have emptied before the watch began.
        self.cgroup_changed(token);
        true
    }

    /// A watched cgroup's `cgroup.events` changed: remove the cgroup if it is empty now.
    fn cgroup_changed(&mut self, token: u64) {
        let units_arc = self.units.clone();
        // Under the lock: `start` may be creating a cgroup in the same parent.
        let units = units_arc.lock().unwrap_or_else(|e| e.into_inner());
        let finished = self.cgroup_changed_locked(token);
        drop(units);
        if let Some(unit) = finished {
            self.finish_unit(&unit);
        }
    }

    /// `cgroup_changed` with the units lock held: the drained unit whose cgroup is now empty,
    /// if any (it is reported even if the directory cannot be removed yet).
    fn cgroup_changed_locked(&mut self, token: u64) -> Option<String> {
        let (empty, removed) = match self.pending_rmdir.get(&token) {
            Some((dir, _, Some(_))) => {
                let empty = !cgroup::populated(dir);
                (empty, empty && cgroup::remove(dir))
            }
            Some((dir, _, None)) => {
                let removed = cgroup::remove(dir);
                (removed, removed)
            }
            None => return None,
        };
        if !empty {
            return None;
        }
        let unit = match self.pending_rmdir.get_mut(&token) {
            Some((_, _, unit)) => unit.take(),
            None => None,
        };
        if removed {
            if let Some((_, events, _)) = self.pending_rmdir.remove(&token) {
                let _ = self.epoll.delete(events.as_fd());
            }
        }
        unit
    }

    /// Units without a cgroup being drained: report those with no member left.
    fn check_groups(&mut self) {
        let units_arc = self.units.clone();
        let units = units_arc.lock().unwrap_or_else(|e| e.into_inner());
        let empty: Vec<String> = self
            .draining_groups
            .iter()
            .filter(|u| {
                units.map.get(*u).is_none_or(|e| match e.membership() {
                    Membership::Cgroup(dir) => !cgroup::populated(dir),
                    Membership::Group { main, pgid, marker } => {
                        tree::group_members(main, pgid, marker).is_empty()
                    }
                })
            })
            .cloned()
            .collect();
        drop(units);
        for unit in empty {
            self.draining_groups.remove(&unit);
            self.finish_unit(&unit);
        }
    }

    /// The drained `unit` is empty: drop its entry and report its end (takes the units lock).
    fn finish_unit(&mut self, unit: &str) {
        let event = {
            let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
            match units.map.get(unit).filter(|e| e.ended.is_some()) {
                Some(_) => units.map.remove(unit).and_then(|mut e| e.ended.take()),
                None => None,
            }
        };
        if let Some(event) = event {
            self.report_end(event);
        }
    }

    fn report_end(&self, event: BackendEvent) {
        if let BackendEvent::Exited { unit, .. } | BackendEvent::ExecFailed { unit, .. } = &event {
            // Streams are named by service (a deployment's candidate logs as its service).
            self.output.unit_exited(crate::spec::service_of(unit));
        }
        (self.sink)(event);
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

    /// The pidfd of `pid` is readable: collect the status; report the end of the unit if
    /// nothing else of it is left, else report `MainExited` and drain it.
    fn main_exited(&mut self, pid: u32) {
        enum Next {
            /// The unit is empty: its end (and a cgroup to remove once it can be).
            Done(BackendEvent, Option<PathBuf>),
            /// Processes of the unit remain.
            Drain(BackendEvent, String, Option<PathBuf>),
        }
        let next = {
            let units_arc = self.units.clone();
            let mut units = units_arc.lock().unwrap_or_else(|e| e.into_inner());
            let Some(unit) = units.by_pid.remove(&pid) else {
                return;
            };
            let Some(entry) = units.map.get_mut(&unit) else {
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
            let end = match entry.failure.take() {
                Some(error) => BackendEvent::ExecFailed {
                    unit: unit.clone(),
                    pid,
                    error,
                },
                None => BackendEvent::Exited {
                    unit: unit.clone(),
                    pid,
                    status,
                },
            };
            entry.ended = Some(end);
            let left = match entry.membership() {
                Membership::Cgroup(dir) => cgroup::populated(dir),
                Membership::Group { main, pgid, marker } => {
                    !tree::group_members(main, pgid, marker).is_empty()
                }
            };
            if left {
                let exit = BackendEvent::MainExited {
                    unit: unit.clone(),
                    pid,
                    stopping: entry.stopping,
                    stop_signal: entry.stop_signal,
                    stop_timeout: entry.stop_timeout,
                };
                Next::Drain(exit, unit, entry.cgroup.clone())
            } else {
                let Some(mut entry) = units.map.remove(&unit) else {
                    return;
                };
                // Still under the lock, so that a new instance of the unit cannot be started
                // into the cgroup being removed.
                let dir = entry.cgroup.take().filter(|d| !cgroup::remove(d));
                let Some(end) = entry.ended.take() else {
                    return;
                };
                Next::Done(end, dir)
            }
        };
        match next {
            Next::Done(end, dir) => {
                if let Some(dir) = dir {
                    self.watch_until_empty(&dir);
                }
                self.report_end(end);
            }
            Next::Drain(exit, unit, dir) => {
                (self.sink)(exit);
                match dir {
                    Some(dir) => {
                        if !self.watch_cgroup(&dir, Some(unit.clone())) {
                            // Cannot be watched: fall back to the SIGCHLD-driven check.
                            self.draining_groups.insert(unit);
                        }
                    }
                    None => {
                        self.draining_groups.insert(unit);
                    }
                }
            }
        }
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
