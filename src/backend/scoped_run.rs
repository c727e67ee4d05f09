//! `sysg run --scope`: one command run in the foreground, as a child of the calling process,
//! inside a unit of a project's slice (like `systemd-run --scope`).
//!
//! With a systemd manager (the system's with `--sys`, else the user's), the calling process
//! first moves itself into a fresh transient scope and waits until systemd has done so; the
//! command is then started and inherits the scope, so nothing it forks can be outside it (the
//! pattern `systemd-run --scope` uses, without its look-up of `unit/self`). Without a manager,
//! the command joins a fresh cgroup of its own before its exec, where one can be made; else it
//! runs where the caller runs. The terminal, stdin and the environment are the caller's.

use std::path::PathBuf;
use std::process::Command;

use crate::backend::BackendError;
use crate::spec::UnitSpec;

/// Where the command ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A transient systemd scope of this name.
    Scope(String),
    /// A cgroup this process made (removed once the command ended).
    Cgroup(PathBuf),
    /// No unit could be made; it ran in the caller's cgroup.
    Unplaced,
}

/// What to run.
pub struct ScopedRun<'a> {
    /// The system manager (`--sys`) or the user's.
    pub system: bool,
    /// A systemd manager is required (`--backend systemd`): without one, fail.
    pub require_systemd: bool,
    /// Try a manager at all (`--backend process` with `SYSG_NO_SCOPES=1` does not).
    pub use_systemd: bool,
    pub project: &'a str,
    /// The unit name inside the project (`run_<pid>` by default).
    pub name: &'a str,
    /// Absolute program path first, then its arguments.
    pub argv: &'a [String],
    /// Variables added to the caller's environment.
    pub env: &'a [(String, String)],
}

/// Run the command to its end; its status in the shell's convention (the code, or 128+N
/// after signal N) and where it ran.
pub fn run(r: &ScopedRun<'_>) -> Result<(i32, Placement), BackendError> {
    let program = r
        .argv
        .first()
        .ok_or_else(|| BackendError::Other("nothing to run".into()))?;
    let mut cmd = Command::new(program);
    cmd.args(&r.argv[1..]);
    for (k, v) in r.env {
        cmd.env(k, v);
    }
    let mut placement = Placement::Unplaced;
    if r.use_systemd {
        match enter_scope(r) {
            Ok(name) => placement = Placement::Scope(name),
            Err(e) if r.require_systemd => return Err(e),
            Err(e) => tracing::debug!("no transient scope: {e}"),
        }
    }
    let mut cgroup_procs = None;
    if placement == Placement::Unplaced {
        if let Some((dir, procs)) = super::process::foreground_cgroup(r.project, r.name) {
            placement = Placement::Cgroup(dir);
            cgroup_procs = Some(procs);
        }
    }
    if let Some(procs) = &cgroup_procs {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = procs.as_raw_fd();
        // SAFETY: the hook runs in the forked child before exec and only calls write(2), which
        // is async-signal-safe, on a descriptor opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // Writing "0" to cgroup.procs moves the writing process.
                if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let spawned = cmd.spawn();
    drop(cgroup_procs);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            cleanup(&placement);
            return Err(BackendError::Other(format!("cannot run `{program}`: {e}")));
        }
    };
    // The terminal's SIGINT and SIGQUIT reach the command (same process group); we only wait
    // for its end, as a shell does.
    // SAFETY: setting a signal disposition of this process; no handler code runs.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = child.wait().map_err(|e| BackendError::Io {
        context: format!("waiting for `{program}`"),
        source: e,
    });
    cleanup(&placement);
    Ok((exit_code(status?), placement))
}

/// The shell's convention for an exit status.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    }
}

fn cleanup(placement: &Placement) {
    if let Placement::Cgroup(dir) = placement {
        super::process::remove_cgroup(dir);
    }
}

/// Move this process into a fresh scope of the project's slice; returns the scope's name.
#[cfg(target_os = "linux")]
fn enter_scope(r: &ScopedRun<'_>) -> Result<String, BackendError> {
    use crate::backend::ScopeHost;
    let registrar = super::systemd::scope::ScopeRegistrar::connect(r.system, r.project)?;
    let spec = UnitSpec::new(r.project, r.name, r.argv.to_vec());
    registrar.register(&spec, std::process::id())
}

#[cfg(not(target_os = "linux"))]
fn enter_scope(_: &ScopedRun<'_>) -> Result<String, BackendError> {
    Err(BackendError::Other(
        "transient scopes exist only on Linux".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(5 << 8)), 5);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
