//! Reaching a systemd manager over D-Bus: which bus, whether it answers, its version, and the
//! project's running units as the manager lists them (for `sysg status` without a supervisor).

use std::sync::Arc;

use zbus::blocking::Connection;

use super::naming;
use super::proxies::{ManagerProxy, ServiceProxy};
use crate::backend::BackendError;

/// The running services of `project` (service name, MainPID) among the manager's units.
pub(super) fn project_units(
    conn: &Connection,
    project: &str,
) -> Result<Vec<(String, u32)>, BackendError> {
    let pattern = naming::project_pattern(project);
    let rows = ManagerProxy::new(conn)
        .and_then(|m| m.list_units_by_patterns(&[], &[pattern.as_str()]))
        .map_err(|e| BackendError::Other(format!("listing units {pattern}: {e}")))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, active) = (&row.0, row.3.as_str());
        let Some(service) = naming::service_of_unit(project, name) else {
            continue;
        };
        if !matches!(active, "active" | "activating" | "reloading") {
            continue;
        }
        match main_pid(conn, &row.6) {
            Ok(pid) if pid != 0 => out.push((service, pid)),
            Ok(_) => {}
            Err(e) => tracing::debug!("{name}: {e}"),
        }
    }
    Ok(out)
}

pub(super) fn main_pid(
    conn: &Connection,
    path: &zbus::zvariant::OwnedObjectPath,
) -> Result<u32, zbus::Error> {
    ServiceProxy::builder(conn)
        .path(path.as_ref())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()?
        .main_pid()
}

/// The services of `project` running as units of the system (or the user's) manager, found
/// without a supervisor or a state file: what `sysg status` shows when both are gone (the
/// units outlive them). Empty when no manager answers.
pub fn running_without_supervisor(system: bool, project: &str) -> Vec<(String, u32)> {
    if system && !std::path::Path::new("/run/systemd/system").exists() {
        return Vec::new();
    }
    match bus(system).and_then(|conn| project_units(&conn, project)) {
        Ok(units) => units,
        Err(e) => {
            tracing::debug!("no systemd units to show: {e}");
            Vec::new()
        }
    }
}

/// Why the systemd backend cannot be used: in words for the user, with the underlying error
/// (D-Bus, I/O) for the debug log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// `no systemd user manager reachable`, ...
    pub reason: String,
    /// The error behind it, when there is one.
    pub detail: Option<String>,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Is the systemd backend usable? `Err` says why not (for `--backend auto`).
pub fn available(system: bool) -> Result<(), Unavailable> {
    if system && !std::path::Path::new("/run/systemd/system").exists() {
        return Err(Unavailable {
            reason: "the system was not booted with systemd (/run/systemd/system is missing)"
                .into(),
            detail: None,
        });
    }
    let which = if system { "system" } else { "user" };
    let unreachable = |e: BackendError| Unavailable {
        reason: format!("no systemd {which} manager reachable"),
        detail: Some(e.to_string()),
    };
    let conn = bus(system).map_err(unreachable)?;
    manager_version(&conn).map(|_| ()).map_err(unreachable)
}

pub(super) fn bus(system: bool) -> Result<Connection, BackendError> {
    let address = if system {
        zbus::Address::system()
    } else {
        zbus::Address::session()
    };
    address
        .and_then(connect_address)
        .map_err(|e| unreachable_err(system, e))
}

/// Open a connection to the bus at `address`. A socket file (the usual `unix:path=`) is
/// connected here and handed over: zbus connects through the `blocking` crate's thread pool,
/// whose idle thread then wakes twice a second for the rest of the process's life (blocking
/// 1.7), and an idle supervisor must not wake up at all.
pub fn connect_address(address: zbus::Address) -> zbus::Result<Connection> {
    use zbus::address::transport::{Transport, UnixSocket};
    use zbus::blocking::connection::Builder;
    if let Transport::Unix(unix) = address.transport() {
        if let UnixSocket::File(path) = unix.path() {
            let stream = crate::os::sock::connect(path).map_err(|e| {
                let e = std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                zbus::Error::InputOutput(Arc::new(e))
            })?;
            return Builder::async_io_unix_stream(stream).build();
        }
    }
    Builder::address(address)?.build()
}

fn unreachable_err(system: bool, e: zbus::Error) -> BackendError {
    let which = if system { "system" } else { "session" };
    BackendError::Other(format!(
        "systemd is not reachable over D-Bus ({which} bus): {e}"
    ))
}

/// The `Version` of the manager the systemd backend would use (`system` or the user's), when
/// one is reachable.
pub fn running_version(system: bool) -> Result<String, String> {
    available(system).map_err(|e| e.to_string())?;
    let conn = bus(system).map_err(|e| e.to_string())?;
    manager_version(&conn).map_err(|e| e.to_string())
}

pub(super) fn manager_version(conn: &Connection) -> Result<String, BackendError> {
    ManagerProxy::new(conn)
        .and_then(|m| m.version())
        .map_err(|e| BackendError::Other(format!("systemd is not reachable over D-Bus: {e}")))
}
