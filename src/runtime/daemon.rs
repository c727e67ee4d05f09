//! `start --daemonize`: run the supervisor as a detached process (own session, stdio to the
//! supervisor log) and wait on a pipe for its one-line readiness report.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::observe::{Progress, ProgressLine};
use super::paths::ProjectPaths;
use super::RuntimeError;
use crate::control::protocol::Response;
use crate::os::fs::{Access, Create};

/// The supervisor's own log (its stdout and stderr when detached), in the log directory.
const SUPERVISOR_LOG: &str = "supervisor.log";

/// Arguments passed through to the detached supervisor (global options first).
pub struct DaemonArgs<'a> {
    pub config: &'a Path,
    /// The project's name (for the supervisor's scope).
    pub project: &'a str,
    pub system: bool,
    pub backend: &'a str,
    pub log_level: Option<String>,
    pub service: Option<&'a str>,
    /// Only adopt what a crashed supervisor left; start nothing.
    pub adopt_only: bool,
    /// `--drop-privileges`.
    pub drop_privileges: bool,
    /// The `adhoc` project's supervisor (`sysg run`): no config file.
    pub adhoc: bool,
}

/// Start a detached supervisor and return its readiness report.
pub fn spawn(args: DaemonArgs<'_>, paths: &ProjectPaths) -> Result<Response, RuntimeError> {
    spawn_with_progress(args, paths, &mut |_| {})
}

/// Like `spawn`, calling `on_progress` for each progress line the supervisor sends before
/// its final report.
pub fn spawn_with_progress(
    args: DaemonArgs<'_>,
    paths: &ProjectPaths,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Response, RuntimeError> {
    // The log directory may belong to the services' user (`--drop-privileges`): the file is
    // opened in the directory's descriptor, never through a symbolic link, and only when it
    // is a regular file with no other name.
    let dirs = paths.open_dirs()?;
    let log_path = paths.log_dir.join(SUPERVISOR_LOG);
    let log = dirs
        .log
        .open_file(SUPERVISOR_LOG, Access::Append, Create::IfMissing(0o666))
        .map_err(RuntimeError::io(format!("opening {}", log_path.display())))?;
    drop(dirs);
    let log2 = log
        .try_clone()
        .map_err(RuntimeError::io("duplicating the log file"))?;
    // The write end must survive exec (no CLOEXEC); the read end must not leak into the child.
    let (read_end, write_end) =
        nix::unistd::pipe().map_err(|e| RuntimeError::Other(format!("pipe: {e}")))?;
    nix::fcntl::fcntl(
        &read_end,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| RuntimeError::Other(format!("fcntl: {e}")))?;
    let exe = std::env::current_exe().map_err(RuntimeError::io("locating the sysg binary"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config").arg(args.config);
    cmd.arg("--backend").arg(args.backend);
    if args.system {
        cmd.arg("--sys");
    }
    if args.drop_privileges {
        cmd.arg("--drop-privileges");
    }
    if let Some(l) = &args.log_level {
        cmd.arg("--log-level").arg(l);
    }
    cmd.arg("supervise")
        .arg("--ready-fd")
        .arg(write_end.as_raw_fd().to_string());
    if let Some(s) = args.service {
        cmd.arg("--service").arg(s);
    }
    if args.adopt_only {
        cmd.arg("--adopt-only");
    }
    if args.adhoc {
        cmd.arg("--adhoc");
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from our terminal and
    // process group so that the shell's job control never signals it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(RuntimeError::io("starting the supervisor"))?;
    drop(write_end);
    place_in_scope(&args, child.id());
    let mut line = String::new();
    let mut reader = BufReader::new(std::fs::File::from(read_end));
    // Progress lines come first; the last line is the report.
    let n = loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(RuntimeError::io("waiting for the supervisor"))?;
        match serde_json::from_str::<ProgressLine>(line.trim_end()) {
            Ok(p) if n > 0 => on_progress(p.progress),
            _ => break n,
        }
    };
    drop(child);
    if n == 0 {
        return Err(RuntimeError::Other(format!(
            "the supervisor exited during start-up; see {}",
            log_path.display()
        )));
    }
    serde_json::from_str(line.trim_end()).map_err(|e| {
        RuntimeError::Other(format!(
            "unreadable readiness report from the supervisor: {e}"
        ))
    })
}

/// Move the new supervisor into a scope of its own when a systemd manager answers (see
/// backend/systemd/supervisor_scope.rs), unless this process already runs in a unit (then so does the
/// supervisor) or the process backend will run (asked for, or implied by
/// `--drop-privileges`): it makes cgroups of its own beside the supervisor's.
fn place_in_scope(args: &DaemonArgs<'_>, pid: u32) {
    #[cfg(target_os = "linux")]
    {
        use crate::backend::systemd::supervisor_scope as scope;
        // `--drop-privileges` means the process backend (the systemd one cannot drop).
        if args.backend == "process" || args.drop_privileges || scope::in_a_unit() {
            return;
        }
        match scope::place_supervisor(args.system, args.project, pid) {
            Ok(name) => tracing::debug!("the supervisor (pid {pid}) runs in {name}"),
            Err(e) => tracing::debug!("the supervisor stays in this session: {e}"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (args, pid);
}
