//! Helper commands (probes, hooks, deployment commands) on the systemd backend as transient
//! services built from their service's unit properties (`backend::systemd::helper`), wired into
//! `health::placement` for the supervisor.

/// On the systemd backend, helper commands run as transient services built from their
/// service's unit properties (`health::placement::as_service` says which kinds; the others
/// keep their scopes). Without a manager to run them, they fall back to the scopes' path.
#[cfg(target_os = "linux")]
pub fn install(system: bool, project: &str, env_dir: std::path::PathBuf) {
    use crate::backend::systemd::helper::HelperUnits;
    match HelperUnits::connect(system, project, Some(env_dir)) {
        Ok(units) => {
            let units = std::sync::Arc::new(units);
            let killer = units.clone();
            crate::health::placement::set_unit_runner(
                Box::new(move |run, output| units.run(run, output).map_err(|e| e.to_string())),
                Box::new(move || killer.kill_running()),
            );
        }
        Err(e) => tracing::warn!("helper commands cannot run as units of their own: {e}"),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn install(_: bool, _: &str, _: std::path::PathBuf) {}
