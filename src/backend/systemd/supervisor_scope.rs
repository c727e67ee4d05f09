//! A daemonized supervisor started by hand (`sudo sysg --sys start -d` in an admin's shell)
//! would live in that login session: invisible to `systemctl`, and ended by a logout with
//! `KillUserProcesses=` or a session's cleanup. When a manager answers, `start -d` moves the
//! new supervisor into a transient scope of its own, `sysg-<project>-supervisor.scope`, like
//! `systemd-run --scope`: `systemctl status` shows it, its process and its memory. Only the
//! supervisor moves; the services are units of their own already. The scope ends with the
//! supervisor and is collected then (`CollectMode=inactive-or-failed`).
//!
//! The scope stays out of the project's slice: the project's last `sysg stop` stops that
//! slice, which would signal the supervisor in the middle of its own shutdown.

use std::time::{Duration, Instant};

use zbus::zvariant::Value;

use super::naming;
use super::proxies::{ManagerProxy, UnitProxy};

/// How long to wait for the scope to be active (systemd moves the process when its start job
/// runs, right after the call).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The scope of `project`'s supervisor.
pub fn scope_name(project: &str) -> String {
    format!(
        "{}{}-supervisor.scope",
        naming::PREFIX,
        naming::escape(project)
    )
}

/// Whether this process already runs as (a child of) a systemd service: `systemg.service`,
/// or any unit systemd started (`INVOCATION_ID`). Its supervisor then stays in that unit.
pub fn in_a_unit() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
}

/// Move the supervisor `pid` of `project` into its scope on the system (`system`) or the
/// user's manager. `Err` says why not; the caller logs it and goes on (the supervisor runs
/// all the same, as before).
pub fn place_supervisor(system: bool, project: &str, pid: u32) -> Result<String, String> {
    if system && !std::path::Path::new("/run/systemd/system").exists() {
        return Err("no systemd manager (/run/systemd/system is missing)".into());
    }
    let conn = super::bus(system).map_err(|e| e.to_string())?;
    let manager = ManagerProxy::new(&conn).map_err(|e| e.to_string())?;
    let name = scope_name(project);
    naming::check_length(&name)?;
    let description = format!("systemg supervisor of project {project}");
    let props: Vec<(&str, Value<'_>)> = vec![
        ("Description", Value::from(description.as_str())),
        ("PIDs", Value::from(vec![pid])),
        ("CollectMode", Value::from("inactive-or-failed")),
    ];
    manager
        .start_transient_unit(&name, "fail", &props, &[])
        .map_err(|e| format!("starting {name}: {}", super::describe(&e)))?;
    // Wait until systemd moved the process, so that `systemctl status` right after
    // `start -d` shows it.
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let state = manager.get_unit(&name).and_then(|path| {
            UnitProxy::builder(&conn)
                .path(path)?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()?
                .active_state()
        });
        match state {
            Ok(s) if s == "active" => return Ok(name),
            Ok(s) if s == "failed" => return Err(format!("{name} failed")),
            _ if Instant::now() >= deadline => {
                return Err(format!("{name} is not active after {ACTIVE_TIMEOUT:?}"))
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_is_named_after_the_project_and_is_no_service_of_it() {
        assert_eq!(scope_name("web"), "sysg-web-supervisor.scope");
        assert_eq!(scope_name("my-app"), "sysg-my\\x2dapp-supervisor.scope");
        assert!(naming::of_project("web", &scope_name("web")));
        // Never taken for a service: discovery and adoption look at `.service` units only.
        assert_eq!(naming::service_of_unit("web", &scope_name("web")), None);
    }
}
