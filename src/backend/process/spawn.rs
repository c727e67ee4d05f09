//! Forking a unit's main process: FIFOs for its output, its own session, its cgroup, created
//! in its cgroup by clone3 and not waited for.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use super::cgroup::UnitCgroup;
use super::pid_env::PidEntries;
use super::privs::{self, ChildSetup, Report, Step, StepError};
use super::sockets::{ListenFds, PROTOCOL_VARS};
use super::tree::MARKER_VAR;
use crate::argv::{self, search_path};
use crate::backend::BackendError;
use crate::spec::UnitSpec;

/// Requested pipe buffer for each output FIFO (failure is ignored).
const PIPE_SIZE: i32 = 1024 * 1024;

fn start_err(spec: &UnitSpec, message: impl Into<String>) -> BackendError {
    BackendError::Start {
        unit: spec.name.clone(),
        message: message.into(),
    }
}

/// Check what can be checked before anything is created.
pub fn check_supported(spec: &UnitSpec) -> Result<(), BackendError> {
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err(start_err(spec, "nothing to run (empty command)"));
    }
    check_name(&spec.project).map_err(|m| start_err(spec, format!("project name: {m}")))?;
    // A spawned child's key is `service/child`; each part becomes a file or cgroup name.
    for part in spec.name.split('/') {
        check_name(part).map_err(|m| start_err(spec, format!("unit name: {m}")))?;
    }
    if spec.name.matches('/').count() > usize::from(spec.spawn.is_some()) {
        return Err(start_err(
            spec,
            String::from("unit name: must not contain `/`"),
        ));
    }
    Ok(())
}

/// Names become file and cgroup names.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.starts_with('.') || name.contains(['/', '\0', '\n']) {
        return Err("must not start with `.` or contain `/`, NUL or newline");
    }
    Ok(())
}

/// Held while a FIFO path is replaced (`make_fifo`) or removed once drained
/// (`remove_fifo_if`): the output thread checks which FIFO a path names and removes it as one
/// step, so it can never remove the FIFO a new instance of the unit just made there.
static FIFO_PATHS: Mutex<()> = Mutex::new(());

/// Create the FIFO at `path` (replacing an old one) and open it: the read end (non-blocking,
/// for the supervisor) first, then the child's end O_RDWR.
pub fn make_fifo(path: &Path) -> io::Result<(File, File)> {
    {
        let _paths = FIFO_PATHS.lock().unwrap_or_else(|e| e.into_inner());
        match fs::symlink_metadata(path) {
            Ok(_) => fs::remove_file(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)?;
    }
    let reader = open_fifo_reader(path)?;
    let writer = OpenOptions::new().read(true).write(true).open(path)?;
    let _ = fcntl(&reader, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((reader, writer))
}

/// Remove the FIFO at `path` if it is still the one identified by `id` (device, inode): a
/// drained stream's FIFO goes, a newer one made at the same path stays. (The old inode cannot
/// be reused meanwhile: the caller still holds the old FIFO open.)
pub fn remove_fifo_if(path: &Path, id: (u64, u64)) {
    use std::os::unix::fs::MetadataExt;
    let _paths = FIFO_PATHS.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(m) = fs::symlink_metadata(path) {
        if (m.dev(), m.ino()) == id {
            let _ = fs::remove_file(path);
        }
    }
}

/// Open the read end of an existing FIFO without blocking. A FIFO is never a symbolic link:
/// one at the name is refused, not followed (the path of an adopted unit's FIFO comes from
/// the state file, which a `--drop-privileges` user writes and root reads).
pub fn open_fifo_reader(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.file_type().is_fifo() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a FIFO"));
    }
    Ok(file)
}

/// The process `spawn` created.
pub struct Spawned {
    pub pid: u32,
    /// A pidfd of the process, when the kernel handed one over with the process (clone3).
    pub pidfd: Option<OwnedFd>,
    /// The read end of the child's report pipe while the child may still fail before its
    /// exec: a failure record arrives there, or end-of-file once the exec succeeded.
    /// `None` when `spawn` already waited for the outcome.
    pub pending: Option<Pending>,
}

/// A child whose set-up and exec have not been confirmed yet.
pub struct Pending {
    pub report: OwnedFd,
    /// The program as named in errors.
    pub program: String,
    /// The unit, as named in errors.
    pub unit: String,
}

impl Pending {
    /// Read what the child reported (without blocking); `Some(error)` when its set-up or exec
    /// failed. Call once the pipe is readable or the child has exited.
    pub fn failure(&self) -> Option<String> {
        let mut bytes = [0u8; 64];
        let n = nix::unistd::read(&self.report, &mut bytes).unwrap_or(0);
        let (step, errno) = Report::parse(&bytes[..n]).failed?;
        Some(
            BackendError::Start {
                unit: self.unit.clone(),
                message: failure_message(&self.program, step, errno),
            }
            .to_string(),
        )
    }
}

/// The error text of a failed step of the child.
fn failure_message(program: &str, step: Step, errno: i32) -> String {
    let e = io::Error::from_raw_os_error(errno);
    match step.describe() {
        _ if step == Step::Exec => format!("cannot run `{program}`: {e}"),
        (field, action) if field.starts_with('(') => format!("{action}: {e}"),
        (field, action) => format!("{field}: {action}: {e}"),
    }
}

/// What the child executes: the file, its argv, its environment; all prepared before the fork.
struct Exec {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The program as named in errors.
    program: String,
}

fn cstring(what: &str, s: impl Into<Vec<u8>>) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

impl Exec {
    fn prepare(
        spec: &UnitSpec,
        marker: &str,
        listen: Option<&ListenFds>,
        pids: &PidEntries,
    ) -> Result<Exec, String> {
        let mut envp = Vec::with_capacity(spec.env.len() + 32);
        // sd_listen_fds' variables are only ever the ones made for this child (see sockets.rs),
        // and so is a pid the child writes itself (pid_env.rs).
        let own = |k: &OsStr| {
            k == MARKER_VAR
                || PROTOCOL_VARS.iter().any(|v| OsStr::new(v) == k)
                || pids.names(k.as_bytes())
                || spec.env.iter().any(|(n, _)| OsStr::new(n) == k)
        };
        for (k, v) in std::env::vars_os() {
            if !own(&k) {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                envp.push(cstring("the environment", kv)?);
            }
        }
        // Later entries win, as they would in a map.
        for (i, (k, v)) in spec.env.iter().enumerate() {
            // The marker is the backend's alone (a spawned child inherits its parent's).
            if k == MARKER_VAR
                || PROTOCOL_VARS.contains(&k.as_str())
                || pids.names(k.as_bytes())
                || spec.env[i + 1..].iter().any(|(n, _)| n == k)
            {
                continue;
            }
            envp.push(cstring(
                &format!("environment variable {k}"),
                format!("{k}={v}"),
            )?);
        }
        envp.push(cstring("the marker", format!("{MARKER_VAR}={marker}"))?);
        for (k, v) in listen.map(|l| l.env.as_slice()).unwrap_or_default() {
            envp.push(cstring("sockets", format!("{k}={v}"))?);
        }

        // A plain shell command runs without the shell when its program is found (the rule
        // shared with the systemd backend); otherwise the shell runs it (and says "not found"
        // itself, as it always did).
        if let Some(direct) = argv::direct(spec) {
            return Ok(Exec {
                path: cstring("the command", direct.path.into_os_string().into_vec())?,
                argv: direct
                    .argv
                    .iter()
                    .map(|w| cstring("the command", w.as_str()))
                    .collect::<Result<_, _>>()?,
                envp,
                program: direct.argv[0].clone(),
            });
        }
        let search = argv::search_list(spec);
        let program = spec.argv[0].clone();
        let argv = spec
            .argv
            .iter()
            .map(|a| cstring("the command", a.as_str()))
            .collect::<Result<_, _>>()?;
        let path = if program.contains('/') {
            // Relative to the working directory, which the child enters before its exec.
            let p = match &spec.cwd {
                Some(cwd) => cwd.join(&program),
                None => PathBuf::from(&program),
            };
            let checked = match p.metadata() {
                Ok(m) if m.is_dir() => Err(io::Error::from_raw_os_error(libc::EISDIR)),
                Ok(_) => nix::unistd::access(p.as_path(), nix::unistd::AccessFlags::X_OK)
                    .map_err(io::Error::from),
                Err(e) => Err(e),
            };
            checked.map_err(|e| format!("cannot run `{program}`: {e}"))?;
            cstring("the command", program.as_str())?
        } else {
            let found = search_path(&program, &search).ok_or_else(|| {
                format!(
                    "cannot run `{program}`: not found in PATH ({})",
                    search.to_string_lossy()
                )
            })?;
            cstring("the command", found.into_os_string().into_vec())?
        };
        Ok(Exec {
            path,
            argv,
            envp,
            program,
        })
    }
}

/// Pointers to `strings` ending in NULL, for execve. Valid while `strings` lives.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Everything the child needs, laid out before the fork; the child only reads it.
struct ChildPlan<'a> {
    stdio: [RawFd; 3],
    cwd: Option<&'a CStr>,
    path: &'a CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// `cgroup.procs` to write `0` into, when the process was not created in its cgroup.
    procs: Option<RawFd>,
    report: RawFd,
    setup: &'a ChildSetup,
    /// The ends of the pipe the child waits on before anything else (read, write): the parent
    /// writes a byte once a service manager has moved the child into its scope.
    gate: Option<(RawFd, RawFd)>,
    /// `sockets:` to install just before the exec.
    listen: Option<&'a ListenFds>,
    /// The entries of `envp` that get the child's own pid (`LISTEN_PID`, `WATCHDOG_PID`).
    pids: &'a PidEntries,
}

/// The child's side, between fork and exec: stdio, working directory, signals, session and
/// namespaces, cgroup, limits and identity, exec. A failed step is written to the report pipe
/// and the child exits with 127.
///
/// # Safety
/// Call only in a freshly forked (or cloned) child: only async-signal-safe system calls on data
/// prepared before the fork, no allocation.
unsafe fn run_child(plan: &ChildPlan<'_>) -> ! {
    let steps = || -> Result<(), StepError> {
        if let Some((read, write)) = plan.gate {
            // Our copy of the write end must go, or a parent that gives up would leave us
            // waiting for ever.
            libc::close(write);
            let mut byte = 0u8;
            loop {
                let n = libc::read(read, std::ptr::addr_of_mut!(byte).cast(), 1);
                if n == 1 {
                    break;
                }
                let e = io::Error::last_os_error();
                if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err((Step::Cgroup, e));
            }
            libc::close(read);
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            // The sources are all above 2 (`spawn` makes sure), so no dup2 clobbers another.
            if libc::dup2(fd, target as libc::c_int) < 0 {
                return Err((Step::Stdio, io::Error::last_os_error()));
            }
        }
        if let Some(cwd) = plan.cwd {
            if libc::chdir(cwd.as_ptr()) < 0 {
                return Err((Step::Chdir, io::Error::last_os_error()));
            }
        }
        reset_signals().map_err(|e| (Step::SignalMask, e))?;
        plan.setup.apply_namespaces(plan.report)?;
        // Writing "0" to cgroup.procs moves the writing process.
        if let Some(fd) = plan.procs {
            let buf = b"0";
            if libc::write(fd, buf.as_ptr().cast(), buf.len()) < 0 {
                return Err((Step::Cgroup, io::Error::last_os_error()));
            }
        }
        plan.setup.apply_rest()?;
        if let Some(fds) = plan.listen {
            fds.install().map_err(|e| (Step::Sockets, e))?;
        }
        // After every fork (`isolation.pid` forks again): the pid the program will have.
        plan.pids.fill();
        libc::execve(plan.path.as_ptr(), plan.argv, plan.envp);
        Err((Step::Exec, io::Error::last_os_error()))
    };
    if let Err((step, e)) = steps() {
        privs::report_failure(plan.report, step, &e);
    }
    libc::_exit(127)
}

/// `struct clone_args` of clone3(2) (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Set once clone3 turned out to be unavailable (old kernel, seccomp filter): fork from then on.
static NO_CLONE3: AtomicBool = AtomicBool::new(false);

/// clone3 with a pidfd, created directly in `cgroup` (no migration, which would wait for an
/// RCU grace period): like fork, but the child never exists outside its cgroup.
///
/// # Safety
/// `plan` must satisfy `run_child`'s contract.
unsafe fn clone_into(plan: &ChildPlan<'_>, cgroup: Option<RawFd>) -> io::Result<(u32, OwnedFd)> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD
            | if cgroup.is_some() {
                CLONE_INTO_CGROUP
            } else {
                0
            },
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    let rc = libc::syscall(
        libc::SYS_clone3,
        std::ptr::addr_of_mut!(args),
        std::mem::size_of::<CloneArgs>(),
    );
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if rc == 0 {
        run_child(plan);
    }
    Ok((rc as u32, OwnedFd::from_raw_fd(pidfd)))
}

/// Plain fork (with libc's fork handlers, so that the child may fork again itself).
///
/// # Safety
/// `plan` must satisfy `run_child`'s contract.
unsafe fn fork_child(plan: &ChildPlan<'_>) -> io::Result<u32> {
    match libc::fork() {
        -1 => Err(io::Error::last_os_error()),
        0 => run_child(plan),
        pid => Ok(pid as u32),
    }
}

/// `fd` itself when it is above 2, else a close-on-exec duplicate that is.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3)).map(|n| {
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(n) }
    })?)
}

/// Fork and exec the main process. The caller holds the main-pid registry lock.
///
/// The child is created directly in its cgroup (clone3) and `spawn` returns without waiting
/// for its exec: what can fail is checked before (the program is looked up, the working
/// directory exists), and a step that still fails in the child is reported on the pipe in
/// `Spawned::pending`, read when the child exits. With `scope` (the process backend on a host
/// whose systemd answers), the child is created where the supervisor runs and waits on a pipe
/// until `scope(pid)` had the service manager move it into its scope; then it goes on as one
/// created in its cgroup. A failed `scope` kills the child and fails the start. Without a
/// cgroup, into an old cgroup, or without clone3 (old kernels, seccomp) the child is waited for until its exec, as is one
/// that forks again (`isolation.pid`: its report carries the grandchild's pid).
// One parameter per thing the child is given; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    spec: &UnitSpec,
    stdout: File,
    stderr: File,
    cgroup: Option<&UnitCgroup>,
    marker: &str,
    setup: ChildSetup,
    scope: Option<&dyn Fn(u32) -> Result<(), BackendError>>,
    listen: Option<ListenFds>,
) -> Result<Spawned, BackendError> {
    if let Some(cwd) = &spec.cwd {
        match fs::metadata(cwd) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(start_err(
                    spec,
                    format!("working directory {}: not a directory", cwd.display()),
                ))
            }
            Err(e) => {
                return Err(start_err(
                    spec,
                    format!("working directory {}: {e}", cwd.display()),
                ))
            }
        }
    }
    let mut pids = PidEntries::default();
    if listen.is_some() {
        pids.push("LISTEN_PID");
    }
    if spec.readiness.watchdog.is_some() {
        // As systemd does next to `WATCHDOG_USEC`: sd_watchdog_enabled() checks it is its own.
        pids.push("WATCHDOG_PID");
    }
    let exec =
        Exec::prepare(spec, marker, listen.as_ref(), &pids).map_err(|m| start_err(spec, m))?;
    let cwd = match &spec.cwd {
        Some(d) => Some(
            cstring("the working directory", d.as_os_str().as_bytes())
                .map_err(|m| start_err(spec, m))?,
        ),
        None => None,
    };
    let io_err = |what: &str| {
        let what = what.to_string();
        move |e: io::Error| start_err(spec, format!("{what}: {e}"))
    };
    let stdin = File::open("/dev/null").map_err(io_err("opening /dev/null"))?;
    let stdio = [OwnedFd::from(stdin), stdout.into(), stderr.into()].map(above_stdio);
    let [stdin, stdout, stderr] = stdio;
    let stdio = [
        stdin.map_err(io_err("stdin"))?,
        stdout.map_err(io_err("stdout"))?,
        stderr.map_err(io_err("stderr"))?,
    ];
    // The child reports a failed step (and, with a new pid namespace, its grandchild's pid)
    // here; both ends close on exec.
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| start_err(spec, format!("creating the set-up pipe: {e}")))?;
    // It must outlive the child's filling of fds 3..3+n with its sockets.
    let report_w = match &listen {
        Some(l) => {
            let moved = fcntl(&report_w, FcntlArg::F_DUPFD_CLOEXEC(3 + l.count() as RawFd))
                .map(|n| {
                    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
                    unsafe { OwnedFd::from_raw_fd(n) }
                })
                .map_err(|e| start_err(spec, format!("moving the set-up pipe: {e}")))?;
            // The original must close now: a write end left open here would keep the read
            // below from ever seeing the end of the child's report.
            drop(report_w);
            moved
        }
        None => report_w,
    };
    let forks = setup.forks_again();
    let gate = match scope {
        Some(_) => Some(
            nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| start_err(spec, format!("creating the scope pipe: {e}")))?,
        ),
        None => None,
    };
    let argv = pointers(&exec.argv);
    let mut envp = pointers(&exec.envp);
    // Before the final NULL; their digits are the child's to write.
    envp.splice(envp.len() - 1..envp.len() - 1, pids.pointers());
    let mut plan = ChildPlan {
        stdio: stdio.each_ref().map(|f| f.as_raw_fd()),
        cwd: cwd.as_deref(),
        path: &exec.path,
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        procs: None,
        report: report_w.as_raw_fd(),
        setup: &setup,
        gate: gate.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd())),
        listen: listen.as_ref(),
        pids: &pids,
    };
    // A child that forks again must come from libc's fork (see `fork_child`).
    let cloned = if forks || NO_CLONE3.load(Ordering::Relaxed) {
        None
    } else {
        // Into a fresh cgroup only (see `UnitCgroup::fresh`); an old one is joined by the child.
        let dir = cgroup.filter(|c| c.fresh).and_then(|c| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(&c.dir)
                .ok()
        });
        if cgroup.is_some() && dir.is_none() {
            None
        } else {
            // SAFETY: `plan` points at data that lives until after the call and that the
            // child only reads; `run_child` keeps to async-signal-safe calls.
            match unsafe { clone_into(&plan, dir.as_ref().map(|d| d.as_raw_fd())) } {
                Ok(c) => Some(c),
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG)
                    ) {
                        NO_CLONE3.store(true, Ordering::Relaxed);
                    }
                    tracing::debug!("clone3: {e}; forking instead");
                    None
                }
            }
        }
    };
    let (pid, pidfd) = match cloned {
        Some((pid, fd)) => (pid, Some(fd)),
        None => {
            plan.procs = cgroup.map(|c| c.procs.as_raw_fd());
            // SAFETY: as above.
            let pid =
                unsafe { fork_child(&plan) }.map_err(|e| start_err(spec, format!("fork: {e}")))?;
            (pid, None)
        }
    };
    drop(report_w);
    drop(stdio);
    if let (Some(register), Some((gate_r, gate_w))) = (scope, gate) {
        drop(gate_r);
        if let Err(e) = register(pid) {
            // The child sees the pipe close and gives up; it must not run outside its scope.
            drop(gate_w);
            let _ = super::tree::send_signal(pid, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
            return Err(e);
        }
        let _ = nix::unistd::write(&gate_w, b"g");
    }
    // Created in its cgroup: nothing to wait for, the cgroup names the unit's processes from
    // the first instant. Otherwise the child is waited for until its exec: a forked child joins
    // its cgroup itself, and without a cgroup the unit's processes are found by session and
    // by the marker in their environment, which only the exec puts in place (a stop or a later
    // supervisor looking for leftovers would miss it before). So is a child that forks again.
    if !forks && pidfd.is_some() && (cgroup.is_some() || scope.is_some()) {
        // Read only once readable or at the child's exit; never block the reaper.
        let _ = fcntl(&report_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        return Ok(Spawned {
            pid,
            pidfd,
            pending: Some(Pending {
                report: report_r,
                program: exec.program,
                unit: spec.name.clone(),
            }),
        });
    }
    // Read until every copy of the write end is closed: at the exec, or at the exit of a child
    // that gave up (with `isolation.pid`, the intermediate child reports the grandchild's pid
    // and exits; the grandchild closes its copy at its exec).
    let mut bytes = Vec::new();
    let _ = File::from(report_r).read_to_end(&mut bytes);
    let report = Report::parse(&bytes);
    if forks || report.failed.is_some() {
        // The intermediate child, or a child that gave up: both have exited.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    }
    if let Some((step, errno)) = report.failed {
        return Err(start_err(spec, failure_message(&exec.program, step, errno)));
    }
    if !forks {
        return Ok(Spawned {
            pid,
            pidfd,
            pending: None,
        });
    }
    let grandchild = report.ns_init.ok_or_else(|| {
        start_err(
            spec,
            "isolation.pid: the namespace's first process did not report its pid",
        )
    })?;
    Ok(Spawned {
        pid: grandchild,
        pidfd: None,
        pending: None,
    })
}

/// Give the service a clean signal state: the supervisor blocks the signals it waits for
/// (SIGINT, SIGTERM, SIGHUP) and may have inherited ignored ones (a shell's `&` ignores SIGINT
/// and SIGQUIT); a blocked or ignored SIGTERM would make every stop wait for SIGKILL.
/// Runs between fork and exec: only async-signal-safe calls, no allocation.
pub(crate) fn reset_signals() -> io::Result<()> {
    // SAFETY: sigemptyset/pthread_sigmask/signal are async-signal-safe and act on this
    // (single-threaded, just forked) process only.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        if libc::pthread_sigmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    Ok(())
}

/// Test helpers of the spawn path.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Where `program` is on PATH.
    pub fn which(program: &str) -> PathBuf {
        search_path(program, &std::env::var_os("PATH").unwrap_or_default())
            .unwrap_or_else(|| panic!("{program} not on PATH"))
    }

    /// While alive, spawns take the fork path, as on a kernel without clone3. Other tests
    /// running meanwhile fork too, which is correct, only slower.
    pub struct ForceFork(());

    impl ForceFork {
        pub fn new() -> ForceFork {
            NO_CLONE3.store(true, Ordering::SeqCst);
            ForceFork(())
        }
    }

    impl Drop for ForceFork {
        fn drop(&mut self) {
            NO_CLONE3.store(false, Ordering::SeqCst);
        }
    }
}
