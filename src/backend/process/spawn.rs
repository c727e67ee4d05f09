//! Forking a unit's main process: FIFOs for its output, its own session, its cgroup.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::stat::Mode;

use super::privs::ChildSetup;
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
    check_name(&spec.name).map_err(|m| start_err(spec, format!("unit name: {m}")))?;
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
    // SAFETY: the closure runs between fork and exec; it only makes async-signal-safe system
    // calls (sigprocmask, setsid, unshare, write, setrlimit, setgroups, setresuid, capset, ...) on values
    // prepared before the fork, and does not allocate (io::Error::last_os_error stores the
    // errno inline).
    unsafe {
        cmd.pre_exec(move || {
            // std's spawn keeps the parent's signal mask, and the supervisor blocks SIGTERM,
            // SIGINT and SIGHUP in every thread (its signal thread takes them with sigwait):
            // without this the unit would ignore its stop signal until the SIGKILL.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            // Own session, hence own process group (pgid = sid = pid), no controlling tty.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            setup.apply_namespaces()?;
            // Writing "0" to cgroup.procs moves the writing process.
            if let Some(fd) = cgroup_fd {
                let buf = b"0";
                if libc::write(fd, buf.as_ptr().cast(), buf.len()) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            setup.apply_rest()
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| start_err(spec, format!("cannot run `{}`: {e}", spec.argv[0])))?;
    // Dropping `Child` neither waits nor kills; the reaper collects the status via the pidfd.
    let pid = child.id();
    drop(child);
    drop(cmd);
    Ok(pid)
}
