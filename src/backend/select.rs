//! Picking and creating the backend for `--backend auto|systemd|process`.
//!
//! `SYSG_NO_SCOPES=1` keeps the process backend from registering its units as transient
//! scopes even where a systemd manager answers (benchmarks compare both ways with it).

use super::process::{Echo, ProcessBackend};
use super::{Backend, BackendError, BackendPaths, Choice, EventSink};

/// Create the backend `choice` asks for. `Auto` takes systemd when its manager answers over
/// D-Bus (the system manager with `system`, else the user's) and says in one log line why not
/// otherwise.
pub fn create(
    choice: Choice,
    system: bool,
    project: &str,
    paths: BackendPaths,
    echo: Option<Echo>,
    sink: EventSink,
) -> Result<Box<dyn Backend>, BackendError> {
    #[cfg(target_os = "linux")]
    {
        let manager = if system { "system" } else { "user" };
        // The first line of a supervisor's output names its backend and why, in words; the
        // error behind an unreachable manager goes to the debug log.
        let use_systemd = match choice {
            Choice::Systemd => {
                tracing::info!("systemd backend: chosen with --backend systemd");
                true
            }
            Choice::Process => false,
            Choice::Auto => match super::systemd::available(system) {
                Ok(()) => {
                    tracing::info!("systemd backend: the systemd {manager} manager is reachable");
                    true
                }
                Err(why) => {
                    if let Some(detail) = &why.detail {
                        tracing::debug!("systemd backend unavailable: {detail}");
                    }
                    tracing::info!("process backend: {why}");
                    false
                }
            },
        };
        if use_systemd {
            if echo.is_some() {
                // Output goes to the journal under systemd; there is no stream to echo.
                tracing::info!("service output goes to the journal; see `sysg logs`");
            }
            let b = super::systemd::SystemdBackend::connect(system, project, sink)?
                .with_env_dir(paths.run_dir.join("env"));
            return Ok(Box::new(b));
        }
    }
    #[cfg(not(target_os = "linux"))]
    if choice == Choice::Systemd {
        let _ = (system, project);
        return Err(BackendError::Other(
            "the systemd backend exists only on Linux".into(),
        ));
    }
    if choice == Choice::Process {
        tracing::info!("process backend: chosen with --backend process");
    }
    #[cfg(not(target_os = "linux"))]
    if choice == Choice::Auto {
        tracing::info!("process backend: systemd exists only on Linux");
    }
    let backend = ProcessBackend::new(project, paths, echo, sink)?;
    #[cfg(target_os = "linux")]
    let backend = if choice == Choice::Process {
        with_scopes(backend, system, project)
    } else {
        // `auto` fell back because no manager answers: there is none to hold scopes either.
        backend
    };
    Ok(Box::new(backend))
}

/// `--backend process` on a host whose systemd answers (the system manager with `system`,
/// else the user's): every forked unit becomes a transient scope in the project's slice.
/// Without a manager, units get the backend's own cgroups (or none), as before.
#[cfg(target_os = "linux")]
fn with_scopes(backend: ProcessBackend, system: bool, project: &str) -> ProcessBackend {
    if std::env::var_os("SYSG_NO_SCOPES").is_some_and(|v| v == "1") {
        return backend;
    }
    // Only root may move processes into units of the system manager (a supervisor that
    // dropped its privileges under --sys would fail every start).
    if system && !nix::unistd::geteuid().is_root() {
        tracing::debug!("no transient scopes: the system manager needs root");
        return backend;
    }
    match super::systemd::scope::ScopeRegistrar::connect(system, project) {
        Ok(r) => {
            tracing::debug!("forked units become transient scopes");
            backend.with_scopes(Box::new(r))
        }
        Err(e) => {
            tracing::debug!("no transient scopes: {e}");
            backend
        }
    }
}

/// Settings of `cfg` the systemd manager that `choice` would use is too old for (see
/// config/systemd_versions.rs), with their positions. Empty with the process backend, or when
/// no manager is reachable (`auto` then picks the process backend; `systemd` fails to start
/// with its own error).
pub fn version_problems(
    choice: Choice,
    system: bool,
    cfg: &crate::config::Config,
) -> Vec<crate::config::Diagnostic> {
    #[cfg(target_os = "linux")]
    if choice != Choice::Process {
        if let Ok(version) = super::systemd::running_version(system) {
            let mut out = crate::config::systemd_versions::version_problems(cfg, &version);
            out.extend(crate::config::sockets::systemd_problems(cfg));
            return out;
        }
    }
    let _ = (choice, system, cfg);
    Vec::new()
}
