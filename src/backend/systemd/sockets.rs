//! Socket activation on the systemd backend: a service with `sockets:` gets a transient
//! `sysg-<project>-<service>.socket` unit, created in the same `StartTransientUnit` call as
//! its service unit (the `aux` argument: systemd 252 lets neither `Sockets=` on a transient
//! service nor `Service=` on a transient socket be set, so the socket activates the service of
//! its own name, which must be loaded when the socket starts). systemd (PID 1) listens;
//! `systemctl list-sockets` shows it; the service receives the sockets as in sd_listen_fds.
//!
//! The socket unit holds the service unit loaded between instances, so a restart is a
//! `StartUnit` of the same unit: the listening socket stays open in PID 1 and connections wait
//! in its backlog. A changed service (its command, environment or sockets: the fingerprint in
//! the socket's description) replaces both units. The socket units go when the project stops
//! (`release`).
//!
//! Limits of systemd 252, refused with a clear error rather than half done: one socket unit
//! carries one `FileDescriptorName=`, so every socket of a service must share its `name:`; and
//! only the one service unit the socket activates can receive its sockets, so the candidate of
//! a rolling or blue-green deployment (another unit) cannot: those need the process backend.

use std::hash::{Hash, Hasher};

use zbus::zvariant::{OwnedObjectPath, Value};

use super::naming;
use super::properties::Property;
use super::{describe, is_gone, is_no_such_unit, SystemdBackend};
use crate::backend::BackendError;
use crate::spec::{UnitSpec, INSTANCE_SEP};

/// The socket unit of `service`: `sysg-<project>-<service>.socket`.
pub fn socket_name(project: &str, service: &str) -> String {
    let name = naming::unit_name(project, service);
    let stem = name.strip_suffix(".service").unwrap_or(&name);
    format!("{stem}.socket")
}

/// What this spec's units are made from, as a short hex string: a different one means the
/// units must be made again.
pub fn fingerprint(spec: &UnitSpec) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(spec).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn description(spec: &UnitSpec) -> String {
    format!(
        "sockets of {} (systemg project {}, spec {})",
        spec.name,
        spec.project,
        fingerprint(spec)
    )
}

/// The socket unit's properties, or why systemd cannot carry these sockets.
pub fn socket_properties(spec: &UnitSpec) -> Result<Vec<Property>, String> {
    if spec.name.contains(INSTANCE_SEP) {
        return Err(
            "sockets: on the systemd backend a socket unit passes its sockets to one service unit only, so the new instance of a rolling or blue-green deployment cannot share them; use `deployment.strategy: immediate` (a restart refuses no connection either: they wait in the socket) or the process backend".into(),
        );
    }
    let first = spec.sockets.first().ok_or("sockets: none")?;
    if let Some(other) = spec.sockets.iter().find(|s| s.name != first.name) {
        return Err(format!(
            "sockets: on the systemd backend every socket of a service shares one name (one socket unit, one FileDescriptorName=), but `{}` and `{}` differ; give them the same `name:` or use the process backend",
            first.name, other.name
        ));
    }
    let listen: Vec<(String, String)> = spec
        .sockets
        .iter()
        .map(|s| {
            let (kind, addr) = s.listen.systemd_listen();
            (kind.to_string(), addr)
        })
        .collect();
    Ok(vec![
        ("Description".into(), Value::from(description(spec))),
        ("Listen".into(), Value::from(listen)),
        ("FileDescriptorName".into(), Value::from(first.name.clone())),
        // A Unix socket's file goes with the unit.
        ("RemoveOnStop".into(), Value::Bool(true)),
        // sysg restarts the service itself (with its own backoff and limits): connections that
        // wake the socket between instances must never put it into `failed` (the trigger
        // limit, 20 in 2 s by default), which would close it and unload the service unit.
        ("TriggerLimitIntervalUSec".into(), Value::U64(0)),
        ("TriggerLimitBurst".into(), Value::U32(0)),
        (
            "CollectMode".into(),
            Value::from("inactive-or-failed".to_string()),
        ),
    ])
}

/// How a start of a service with sockets goes.
pub(super) struct SocketPlan {
    pub socket: String,
    props: Vec<Property>,
    /// The socket unit and its service unit exist for this very spec: start the service unit.
    pub reuse: bool,
}

impl SystemdBackend {
    /// Decide how to start `spec` (which has sockets): reuse the units made for it, or make
    /// them (after removing units made for another spec).
    pub(super) fn socket_plan(&self, spec: &UnitSpec) -> Result<SocketPlan, BackendError> {
        let service = spec.name.as_str();
        let props = socket_properties(spec).map_err(|message| BackendError::Refused {
            unit: service.to_string(),
            message,
        })?;
        let socket = socket_name(&self.project, service);
        naming::check_length(&socket).map_err(|message| BackendError::Start {
            unit: service.to_string(),
            message,
        })?;
        let m = self.manager()?;
        let path = match m.get_unit(&socket) {
            Ok(p) => Some(p),
            Err(e) if is_no_such_unit(&e) => None,
            Err(e) => return Err(super::call_err(service, "looking up the socket unit", e)),
        };
        if let Some(path) = path {
            let state = self.unit_state(&path).unwrap_or_default();
            // Unreadable (a transient D-Bus error) counts as the same: replacing would close
            // the socket.
            let same = read_description(&self.call, &path).is_none_or(|d| d == description(spec));
            if same && matches!(state.as_str(), "active" | "activating" | "reloading") {
                return Ok(SocketPlan {
                    socket,
                    props,
                    reuse: true,
                });
            }
            // Made for another spec (a reload), or no longer listening: made again.
            tracing::info!(
                "{socket}: replaced ({state}, made for another spec: {})",
                !same
            );
            self.remove_socket(service, &socket)?;
        }
        Ok(SocketPlan {
            socket,
            props,
            reuse: false,
        })
    }

    /// Before a reused service unit is started again: wait until its previous instance is
    /// over as systemd sees it (`inactive`, or `failed`, which is reset), or until the socket
    /// has already started a new one (another main pid). A `StartUnit` while the unit is still
    /// `active` or `deactivating` would be a no-op answered with the old main pid.
    pub(super) fn await_stopped(&self, service: &str, name: &str) -> Result<(), BackendError> {
        let path = naming::unit_object_path(name);
        let old = self.shared.lock().tracks.get(&path).map_or(0, |t| t.pid);
        let deadline = std::time::Instant::now() + super::UNLOAD_TIMEOUT;
        let m = self.manager()?;
        loop {
            let upath = match m.get_unit(name) {
                Ok(p) => p,
                Err(e) if is_no_such_unit(&e) => return Ok(()),
                Err(e) => return Err(super::call_err(service, "looking up the unit", e)),
            };
            let state = self.unit_state(&upath).unwrap_or_default();
            match state.as_str() {
                "inactive" => return Ok(()),
                "failed" => {
                    let _ = m.reset_failed_unit(name);
                    return Ok(());
                }
                "active" | "activating" | "reloading" => {
                    // Started by the socket at a connection (systemd's socket activation), or
                    // still showing the instance that just ended (a stale main pid).
                    let pid = self.main_pid(&upath).unwrap_or(0);
                    let live = crate::os::procfs::stat(pid).is_some_and(|s| s.state != b'Z');
                    if pid != 0 && live && (pid != old || old == 0) {
                        return Ok(());
                    }
                    if pid != 0 && live && pid == old {
                        // The track followed the socket's start to this live process.
                        let ended = self
                            .shared
                            .lock()
                            .tracks
                            .get(&path)
                            .is_some_and(|t| t.ended);
                        if !ended {
                            return Ok(());
                        }
                    }
                }
                _ => {}
            }
            if std::time::Instant::now() >= deadline {
                return Err(BackendError::Start {
                    unit: service.to_string(),
                    message: format!(
                        "the previous instance of {name} is still {state} after {:?}",
                        super::UNLOAD_TIMEOUT
                    ),
                });
            }
            // Woken by the unit's PropertiesChanged; the timeout re-checks.
            let st = self.shared.lock();
            let _ = self
                .shared
                .changed
                .wait_timeout(st, std::time::Duration::from_millis(50));
        }
    }

    /// Stop the socket unit and the service unit it holds, and wait until both are unloaded.
    fn remove_socket(&self, service: &str, socket: &str) -> Result<(), BackendError> {
        let name = self.unit_name(service);
        self.stop_if_loaded(socket)?;
        self.stop_if_loaded(&name)?;
        let m = self.manager()?;
        let _ = m.reset_failed_unit(socket);
        self.ensure_free(service, socket, &naming::unit_object_path(socket))?;
        // Both go: the new socket unit is made together with a new service unit.
        self.ensure_free(service, &name, &naming::unit_object_path(&name))
    }

    /// Make the units (when not `plan.reuse`) and queue the start of the service unit `name`;
    /// returns the service's start job.
    pub(super) fn start_via_socket(
        m: &super::proxies::ManagerProxy<'_>,
        plan: &SocketPlan,
        name: &str,
        service_props: &[(&str, Value<'_>)],
    ) -> Result<String, zbus::Error> {
        if !plan.reuse {
            let sargs: Vec<(&str, Value<'_>)> = plan
                .props
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            // The one service unit is started again at every restart: systemd's start rate
            // limit (5 in 10 s) would refuse it, and stop the socket with it. sysg applies its
            // own backoff and `max_restarts`.
            let mut props: Vec<(&str, Value<'_>)> = service_props.to_vec();
            props.push(("StartLimitIntervalUSec", Value::U64(0)));
            props.push(("StartLimitBurst", Value::U32(0)));
            let aux: [(&str, &[(&str, Value<'_>)]); 1] = [(name, &props)];
            // The service's start job below is ordered after the socket's (a socket comes
            // `Before=` the service it activates).
            m.start_transient_unit(&plan.socket, "fail", &sargs, &aux)?;
        }
        Ok(m.start_unit(name, "replace")?.as_str().to_string())
    }

    /// After the service's start job: the socket must be listening (systemd starts the service
    /// even when its socket could not bind, which would leave it without its sockets).
    pub(super) fn check_socket(
        &self,
        service: &str,
        plan: &SocketPlan,
    ) -> Result<(), BackendError> {
        let m = self.manager()?;
        let state = m
            .get_unit(&plan.socket)
            .ok()
            .and_then(|p| self.unit_state(&p).ok())
            .unwrap_or_else(|| "gone".into());
        if state == "active" {
            return Ok(());
        }
        let _ = self.remove_socket(service, &plan.socket);
        Err(BackendError::Start {
            unit: service.to_string(),
            message: format!(
                "sockets: systemd could not listen ({} is {state}; see `journalctl -u {}`)",
                plan.socket, plan.socket
            ),
        })
    }
}

fn read_description(conn: &zbus::blocking::Connection, path: &OwnedObjectPath) -> Option<String> {
    let proxy = zbus::blocking::Proxy::new(
        conn,
        "org.freedesktop.systemd1",
        path.as_str(),
        "org.freedesktop.systemd1.Unit",
    )
    .ok()?;
    match proxy.get_property::<String>("Description") {
        Ok(d) => Some(d),
        Err(e) => {
            if !is_gone(&e) {
                tracing::debug!(
                    "reading the description of {}: {}",
                    path.as_str(),
                    describe(&e)
                );
            }
            None
        }
    }
}

/// Stop every socket unit of `project` (the project stops): their service units are unloaded
/// with them.
pub(super) fn release(m: &super::proxies::ManagerProxy<'_>, project: &str) {
    let pattern = format!(
        "{}{}-*.socket",
        naming::PREFIX,
        naming::escape(project).replace('\\', "?")
    );
    match m.list_units_by_patterns(&[], &[pattern.as_str()]) {
        Ok(rows) => {
            for row in rows {
                let Some(stem) = row.0.strip_suffix(".socket") else {
                    continue;
                };
                if naming::service_of_unit(project, &format!("{stem}.service")).is_none() {
                    continue;
                }
                if let Err(e) = m.stop_unit(&row.0, "replace") {
                    tracing::debug!("stopping {}: {e}", row.0);
                }
            }
        }
        Err(e) => tracing::debug!("listing {pattern}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sockets::{parse_listen, ListenSocket};
    use std::path::Path;

    fn spec(socks: &[(&str, &str)]) -> UnitSpec {
        UnitSpec {
            sockets: socks
                .iter()
                .map(|(l, n)| ListenSocket {
                    listen: parse_listen(l, Path::new("/")).unwrap(),
                    name: n.to_string(),
                })
                .collect(),
            ..UnitSpec::new("shop", "api", vec!["/bin/true".into()])
        }
    }

    #[test]
    fn socket_unit_listens_as_systemd_run_would() {
        let s = spec(&[
            ("127.0.0.1:8080", "http"),
            ("udp:[::]:53", "http"),
            ("unix:/run/api.sock", "http"),
        ]);
        assert_eq!(socket_name("shop", "api"), "sysg-shop-api.socket");
        let props = socket_properties(&s).unwrap();
        let listen = props.iter().find(|(k, _)| k == "Listen").unwrap();
        assert_eq!(listen.1.value_signature().to_string(), "a(ss)");
        assert_eq!(
            listen.1.to_string(),
            r#"[("Stream", "127.0.0.1:8080"), ("Datagram", "[::]:53"), ("Stream", "/run/api.sock")]"#
        );
        let name = props
            .iter()
            .find(|(k, _)| k == "FileDescriptorName")
            .unwrap();
        assert_eq!(name.1.to_string(), "\"http\"");
        // Another command means other units.
        let mut other = s.clone();
        other.argv = vec!["/bin/false".into()];
        assert_ne!(fingerprint(&s), fingerprint(&other));
        assert_eq!(fingerprint(&s), fingerprint(&s.clone()));
    }

    #[test]
    fn what_systemd_cannot_carry_is_refused_with_the_way_out() {
        let e =
            socket_properties(&spec(&[("127.0.0.1:1", "a"), ("127.0.0.1:2", "b")])).unwrap_err();
        assert!(e.contains("shares one name"), "{e}");
        let mut candidate = spec(&[("127.0.0.1:1", "a")]);
        candidate.name = "api~2".into();
        let e = socket_properties(&candidate).unwrap_err();
        assert!(e.contains("rolling or blue-green"), "{e}");
    }
}
