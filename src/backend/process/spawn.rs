//! Forking a unit's main process: FIFOs for its output, its own session, its cgroup.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use super::privs::{self, ChildSetup, Report, Step, StepError};
use super::tree::MARKER_VAR;
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

/// Create the FIFO at `path` (replacing an old one) and open it: the read end (non-blocking,
/// for the supervisor) first, then the child's end O_RDWR.
pub fn make_fifo(path: &Path) -> io::Result<(File, File)> {
    match fs::symlink_metadata(path) {
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)?;
    let reader = open_fifo_reader(path)?;
    let writer = OpenOptions::new().read(true).write(true).open(path)?;
    let _ = fcntl(&reader, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((reader, writer))
}

/// Open the read end of an existing FIFO without blocking.
pub fn open_fifo_reader(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.file_type().is_fifo() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a FIFO"));
    }
    Ok(file)
}

/// Fork and exec the main process. The caller holds the main-pid registry lock.
pub fn spawn(
    spec: &UnitSpec,
    stdout: File,
    stderr: File,
    cgroup_procs: Option<&File>,
    marker: &str,
    setup: ChildSetup,
) -> Result<u32, BackendError> {
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
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(MARKER_VAR, marker)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let cgroup_fd: Option<RawFd> = cgroup_procs.map(|f| f.as_raw_fd());
    // The child reports a failed step (and, with a new pid namespace, its grandchild's pid)
    // here; both ends close on exec.
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| start_err(spec, format!("creating the set-up pipe: {e}")))?;
    let report_fd = report_w.as_raw_fd();
    let forks = setup.forks_again();
    // SAFETY: the closure runs between fork and exec; it only makes async-signal-safe system
    // calls (setsid, unshare, fork, write, setrlimit, setgroups, setresuid, capset, ...) on
    // values prepared before the fork, and does not allocate (io::Error::last_os_error stores
    // the errno inline).
    unsafe {
        cmd.pre_exec(move || {
            let steps = || -> Result<(), StepError> {
                reset_signals().map_err(|e| (Step::SignalMask, e))?;
                setup.apply_namespaces(report_fd)?;
                // Writing "0" to cgroup.procs moves the writing process.
                if let Some(fd) = cgroup_fd {
                    let buf = b"0";
                    if libc::write(fd, buf.as_ptr().cast(), buf.len()) < 0 {
                        return Err((Step::Cgroup, io::Error::last_os_error()));
                    }
                }
                setup.apply_rest()
            };
            steps().map_err(|(step, e)| {
                privs::report_failure(report_fd, step);
                e
            })
        });
    }
    let spawned = cmd.spawn();
    drop(cmd);
    drop(report_w);
    // Everything the children wrote is there now: std's spawn returns only once every copy of
    // its own exec-error pipe is closed (exec or exit), and ours were written before that.
    let mut bytes = Vec::new();
    let _ = (&File::from(report_r)).read_to_end(&mut bytes);
    let report = Report::parse(&bytes);
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return Err(start_err(
                spec,
                match report.failed.map(Step::describe) {
                    Some((field, action)) if field.starts_with('(') => format!("{action}: {e}"),
                    Some((field, action)) => format!("{field}: {action}: {e}"),
                    None => format!("cannot run `{}`: {e}", spec.argv[0]),
                },
            ))
        }
    };
    // Dropping `Child` neither waits nor kills; the reaper collects the status via the pidfd.
    let pid = child.id();
    drop(child);
    if !forks {
        return Ok(pid);
    }
    // The intermediate child has exited (see above); reap it. The grandchild is ours now.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    report.ns_init.ok_or_else(|| {
        start_err(
            spec,
            "isolation.pid: the namespace's first process did not report its pid",
        )
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
