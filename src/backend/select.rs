//! Picking and creating the backend for `--backend auto|systemd|process`.

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
    Ok(Box::new(ProcessBackend::new(project, paths, echo, sink)?))
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
            return crate::config::systemd_versions::version_problems(cfg, &version);
        }
    }
    let _ = (choice, system, cfg);
    Vec::new()
}
