//! The systemd backend: every service is a transient unit `sysg-<project>-<service>.service`
//! started over D-Bus, watched through systemd's signals, logging to the journal.
//!
//! Two connections, as zbus's backpressure demands: `watch` owns one that only drains signals;
//! this module makes every call on the other. Restart policy stays with the core (no `Restart=`),
//! so systemd only runs, reports and kills.
//!
//! A cron job whose schedule has an `OnCalendar=` form becomes a transient
//! `sysg-<project>-<job>.timer` with its `.service` created in the same call (`arm_timer`), so
//! `systemctl list-timers` shows it; the watch thread reports each elapse and run.

mod cgroups;
mod connection;
mod envfiles;
mod errors;
pub mod helper;
pub mod journal;
pub mod naming;
mod outside;
mod pipeline;
pub mod properties;
pub mod properties_sandbox;
pub mod proxies;
mod readiness;
pub mod scope;
pub mod sockets;
pub mod supervisor_scope;
mod timers;
mod track;
mod wait;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::Value;

use crate::backend::{AdoptRecord, Backend, BackendError, EventSink};
use crate::spec::UnitSpec;

pub use connection::{
    available, connect_address, running_version, running_without_supervisor, Unavailable,
};
use connection::{bus, main_pid, manager_version, project_units};
use errors::{
    call_err, describe, is_gone, is_no_such_unit, is_systemd_exit_code, ran_then_ended,
    refuse_newer_properties, start_call_err, start_failure,
};
use pipeline::Submitted;
use proxies::{ManagerProxy, UnitProxy};
use watch::{Shared, Track};

/// How long `start` waits for systemd to finish the start job.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `start` waits for an earlier instance of the same unit to be unloaded.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs units as systemd transient services.
pub struct SystemdBackend {
    project: String,
    system: bool,
    call: Connection,
    shared: Arc<Shared>,
    /// Where to hand each unit its environment in a private file (`with_env_dir`).
    env_dir: Option<std::path::PathBuf>,
    /// The manager's `Version`: properties newer than it are refused before they are sent.
    version: String,
}

/// Create the slice of a service's spawned children with the tree's limits, once: a slice
/// that already exists (an earlier child, a previous supervisor) is left as it is. A failure
/// is logged, not fatal: systemd then creates the slice implicitly, without the limits. Shared
/// by the backend's units and the process backend's scopes (`scope.rs`).
fn ensure_tree_slice(m: &ManagerProxy<'_>, project: &str, group: &crate::spec::SpawnGroup) {
    let slice = naming::tree_slice_name(project, &group.service);
    if m.get_unit(&slice).is_ok() {
        return;
    }
    let props = properties::tree_slice_properties(group);
    let args: Vec<(&str, Value<'_>)> = props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    if let Err(e) = m.start_transient_unit(&slice, "fail", &args, &[]) {
        tracing::warn!("{slice}: cannot create with the spawn limits: {e}");
    }
}

impl SystemdBackend {
    /// Connect to the system (`system`) or the user's session manager and start watching.
    pub fn connect(
        system: bool,
        project: &str,
        sink: EventSink,
    ) -> Result<SystemdBackend, BackendError> {
        let call = bus(system)?;
        let events = bus(system)?;
        Self::with_connections(call, events, system, project, sink)
    }

    /// Use two already-open connections to the same bus (tests reach a namespaced systemd this
    /// way): `call` for method calls, `events` for nothing but signals.
    pub fn with_connections(
        call: Connection,
        events: Connection,
        system: bool,
        project: &str,
        sink: EventSink,
    ) -> Result<SystemdBackend, BackendError> {
        let version = manager_version(&call)?;
        tracing::debug!(
            "systemd {version} answers on the {} bus",
            if system { "system" } else { "session" }
        );
        let shared = Shared::new(sink);
        watch::spawn(events, shared.clone())?;
        Ok(SystemdBackend {
            project: project.to_string(),
            system,
            call,
            shared,
            env_dir: None,
            version,
        })
    }

    /// Pass each unit's environment through a `0600` file in `dir` (in the project's run
    /// directory, 0700), kept while the unit exists (see envfiles.rs), instead of the
    /// `Environment=` property, which every local user can read with `systemctl show`: env
    /// files hold secrets.
    pub fn with_env_dir(mut self, dir: std::path::PathBuf) -> SystemdBackend {
        let _ = self.shared.env_dir.set(dir.clone());
        self.env_dir = Some(dir);
        self
    }

    /// Write the environment file of `service` when there is an env dir and an environment,
    /// and name it in the unit's properties.
    fn write_env_file(
        &self,
        service: &str,
        spec: &UnitSpec,
        props: &mut Vec<properties::Property>,
    ) -> Result<(), BackendError> {
        let Some(dir) = &self.env_dir else {
            return Ok(());
        };
        if spec.env.is_empty() {
            return Ok(());
        }
        let path = envfiles::write(dir, service, &properties::environment_file(&spec.env))
            .map_err(|e| BackendError::Io {
                context: format!(
                    "writing the environment file of {service} in {}",
                    dir.display()
                ),
                source: e,
            })?;
        let text = path.to_str().ok_or_else(|| BackendError::Start {
            unit: service.to_string(),
            message: format!("{} is not valid UTF-8", path.display()),
        })?;
        properties::use_environment_file(props, text);
        Ok(())
    }

    /// The service's cgroup limits would be enforced: their controllers are available to the
    /// manager's units (see cgroups.rs); otherwise the start fails naming `limits.cgroup`.
    fn check_cgroup_limits(&self, spec: &UnitSpec) -> Result<(), BackendError> {
        if cgroups::wanted(&spec.limits.cgroup).is_empty() {
            return Ok(());
        }
        let group = self
            .manager()?
            .control_group()
            .map_err(|e| call_err(&spec.name, "reading the manager's ControlGroup", e))?;
        // The host's hierarchy does not change between retries: a configuration error.
        cgroups::verify(&spec.limits.cgroup, &group).map_err(|message| BackendError::Refused {
            unit: spec.name.clone(),
            message,
        })
    }

    /// True for the system manager, false for the user's manager.
    pub fn is_system(&self) -> bool {
        self.system
    }

    fn manager(&self) -> Result<ManagerProxy<'_>, BackendError> {
        ManagerProxy::new(&self.call).map_err(|e| BackendError::Other(format!("systemd: {e}")))
    }

    /// The last project to leave stops `sysg.slice` too, so that nothing of systemg stays
    /// loaded. Any unit of another project (loaded and not inactive, or with a job queued)
    /// keeps it; the stop is queued in `fail` mode, so it is refused rather than undo a start
    /// of another project that is already queued.
    fn release_root_slice(&self, m: &ManagerProxy<'_>) {
        let rows = match m.list_units_by_patterns(&[], &[naming::ALL_PATTERN]) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!("listing {}: {e}", naming::ALL_PATTERN);
                return;
            }
        };
        let others = rows.iter().any(|row| {
            !naming::of_project(&self.project, &row.0) && (row.3 != "inactive" || row.7 != 0)
        });
        if others {
            return;
        }
        if let Err(e) = m.stop_unit(naming::ROOT_SLICE, "fail") {
            tracing::debug!("stopping {}: {e}", naming::ROOT_SLICE);
        }
    }

    fn ensure_tree_slice(&self, group: &crate::spec::SpawnGroup) {
        if let Ok(m) = self.manager() {
            ensure_tree_slice(&m, &self.project, group);
        }
    }

    fn unit_name(&self, service: &str) -> String {
        naming::unit_name(&self.project, service)
    }

    /// Running units of `project` as (service, MainPID): what a supervisor that lost its state
    /// file can still adopt.
    pub fn list_project_units(&self, project: &str) -> Result<Vec<(String, u32)>, BackendError> {
        project_units(&self.call, project)
    }

    fn main_pid(&self, path: &zbus::zvariant::OwnedObjectPath) -> Result<u32, zbus::Error> {
        main_pid(&self.call, path)
    }

    fn unit_state(&self, path: &zbus::zvariant::OwnedObjectPath) -> Result<String, zbus::Error> {
        UnitProxy::builder(&self.call)
            .path(path.as_ref())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()?
            .active_state()
    }

    /// Make sure no earlier instance of `name` is loaded: a failed one is reset, an inactive one
    /// is awaited until systemd unloads it, a running one is an error.
    fn ensure_free(&self, service: &str, name: &str, path: &str) -> Result<(), BackendError> {
        let deadline = Instant::now() + UNLOAD_TIMEOUT;
        let manager = self.manager()?;
        loop {
            match manager.get_unit(name) {
                Err(e) if is_no_such_unit(&e) => break,
                Err(e) => return Err(call_err(service, "looking up the unit", e)),
                Ok(upath) => match self.unit_state(&upath) {
                    Ok(s) if s == "failed" => {
                        // A failed unit keeps its name taken until reset; our reference
                        // (AddRef, RefUnit) would keep it loaded.
                        let _ = manager.reset_failed_unit(name);
                        let _ = manager.unref_unit(name);
                    }
                    Ok(s) if s == "inactive" || s == "deactivating" => {
                        let _ = manager.unref_unit(name);
                    }
                    Ok(s) => {
                        return Err(BackendError::Start {
                            unit: service.to_string(),
                            message: format!(
                                "unit {name} is already {s} under systemd (started by an earlier supervisor?); stop it with `systemctl stop {name}` or let sysg adopt it"
                            ),
                        })
                    }
                    Err(e) if is_gone(&e) => {}
                    Err(e) => return Err(call_err(service, "reading the unit state", e)),
                },
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Start {
                    unit: service.to_string(),
                    message: format!(
                        "an earlier instance of {name} is still loaded after {UNLOAD_TIMEOUT:?}"
                    ),
                });
            }
            // Woken by the unit's UnitRemoved; the timeout re-checks in case it was missed.
            let st = self.shared.lock();
            let _ = self
                .shared
                .changed
                .wait_timeout(st, Duration::from_millis(100));
        }
        // The unit is gone; let the signal thread see its removal before a new track takes the
        // path, so no late signal of the old instance lands on the new one.
        let mut st = self.shared.lock();
        while st
            .tracks
            .get(path)
            .is_some_and(|t| !t.removed && (t.start_job_result().is_some() || t.armed))
            && Instant::now() < deadline
        {
            st = self
                .shared
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        Ok(())
    }
}

impl SystemdBackend {
    /// Stop a unit if it is loaded; a missing unit is fine.
    fn stop_if_loaded(&self, name: &str) -> Result<(), BackendError> {
        match self.manager()?.stop_unit(name, "replace") {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_unit(&e) => Ok(()),
            Err(e) => Err(BackendError::Other(format!(
                "StopUnit {name}: {}",
                describe(&e)
            ))),
        }
    }

    /// Wait for the start job `job` of the unit `name`, tracked at `path`; returns systemd's
    /// result.
    fn wait_job(
        &self,
        service: &str,
        name: &str,
        path: &str,
        job: &str,
        timeout: Duration,
        until_main_pid: bool,
    ) -> Result<String, BackendError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        if let Some(t) = st.tracks.get_mut(path) {
            t.start_job = Some(job.to_string());
        }
        let ready = |st: &mut watch::State| {
            let track = st.tracks.get(path)?;
            if let Some(r) = track.start_job_result() {
                return Some(r.to_string());
            }
            // A notify unit runs once it has a main process; READY=1 comes as an event.
            (until_main_pid && track.main_pid != 0).then(|| readiness::RUNNING.to_string())
        };
        let message = match wait::until(st, &self.shared.changed, deadline, ready, |st| {
            st.dead.as_ref()
        }) {
            wait::Waited::Ready(r) => return Ok(r),
            wait::Waited::Lost(why) => format!("lost the signal connection while starting: {why}"),
            wait::Waited::TimedOut => {
                format!("systemd did not finish starting {name} within {timeout:?} (job {job})")
            }
        };
        Err(BackendError::Start {
            unit: service.to_string(),
            message,
        })
    }
}

impl SystemdBackend {
    /// The first half of a start: everything up to systemd's reply to the start call (checks,
    /// the earlier instance gone, env file, the transient unit or the socket's service unit
    /// asked for). systemd runs the start job meanwhile; `finish_start` waits for it.
    fn submit_start(&mut self, spec: &UnitSpec) -> Result<Submitted, BackendError> {
        let service = spec.name.as_str();
        let name = self.unit_name(service);
        naming::check_length(&name).map_err(|message| BackendError::Start {
            unit: service.to_string(),
            message,
        })?;
        let path = naming::unit_object_path(&name);
        let mut props = properties::service_properties(spec).map_err(|e| BackendError::Start {
            unit: service.to_string(),
            message: e.to_string(),
        })?;
        refuse_newer_properties(service, &props, &self.version)?;
        self.check_cgroup_limits(spec)?;
        // Held by this supervisor's connection: a unit stopped outside sysg (`systemctl stop`)
        // stays loaded, so `systemctl start` can bring it back (and sysg follows it).
        props.push(("AddRef".to_string(), Value::Bool(true)));
        if let Some(why) = self.shared.lock().dead.clone() {
            return Err(BackendError::Start {
                unit: service.to_string(),
                message: format!("the systemd backend lost its signal connection: {why}"),
            });
        }
        // With `sockets:`, the socket unit keeps the service unit loaded between instances.
        let via_socket = match spec.sockets.is_empty() {
            true => None,
            false => Some(self.socket_plan(spec)?),
        };
        match &via_socket {
            Some(plan) if plan.reuse => self.await_stopped(service, &name)?,
            _ => self.ensure_free(service, &name, &path)?,
        }
        // systemd reads it at every start of the unit (`systemctl restart` too): it stays
        // until the unit is unloaded. Written once the earlier instance is gone, whose removal
        // takes its file with it.
        self.write_env_file(service, spec, &mut props)?;
        if let Some(group) = &spec.spawn {
            self.ensure_tree_slice(group);
        }

        // The track exists before the call, so signals that beat the reply are kept.
        let track = Track {
            notify: spec.readiness.notify,
            ..Track::new(service, &name)
        };
        self.shared.lock().tracks.insert(path.clone(), track);
        let args: Vec<(&str, Value<'_>)> =
            props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let manager = self.manager()?;
        let started = match &via_socket {
            None => manager
                .start_transient_unit(&name, "fail", &args, &[])
                .map(|j| j.as_str().to_string()),
            Some(plan) => Self::start_via_socket(&manager, plan, &name, &args),
        };
        let job = match started {
            Ok(j) => j,
            Err(e) => {
                self.shared.lock().tracks.remove(&path);
                // No unit was made: nothing will read the file.
                envfiles::remove(self.env_dir.as_ref(), service);
                return Err(start_call_err(service, &props, e));
            }
        };
        // From now on a job of this unit with this id is ours, not an outside one.
        if let Some(t) = self.shared.lock().tracks.get_mut(&path) {
            t.start_job = Some(job.clone());
        }
        Ok(Submitted {
            service: service.to_string(),
            name,
            path,
            job,
            via_socket,
            notify: spec.readiness.notify,
        })
    }

    /// The second half of a start: wait for the start job `submit_start` got, then the main
    /// pid (or the early end, or the failure).
    fn finish_start(&mut self, submitted: Submitted) -> Result<u32, BackendError> {
        let Submitted {
            service,
            name,
            path,
            job,
            via_socket,
            notify,
        } = submitted;
        let service = service.as_str();
        let result = self.wait_job(service, &name, &path, &job, START_TIMEOUT, notify)?;
        if let Some(plan) = &via_socket {
            if result == "done" || result == readiness::RUNNING {
                self.check_socket(service, plan)?;
            }
        }
        let st = self.shared.lock();
        if result != "done" && result != readiness::RUNNING {
            let track = st.tracks.get(&path).cloned().unwrap_or_default();
            drop(st);
            if let Some(pid) = ran_then_ended(&track) {
                // The program ran and ended before systemd finished the start job (a fast
                // crash): a start followed by an exit, as on the process backend.
                let events = {
                    let mut st = self.shared.lock();
                    st.tracks.get_mut(&path).and_then(|t| {
                        t.pid = pid;
                        t.armed = true;
                        t.ended = true;
                        t.take_exit()
                    })
                };
                self.shared.emit(events.into_iter().collect());
                return Ok(pid);
            }
            return Err(BackendError::Start {
                unit: service.to_string(),
                message: start_failure(&name, &result, &track),
            });
        }
        let seen = st.tracks.get(&path).map(|t| t.main_pid).unwrap_or(0);
        drop(st);

        // systemd flushes unit changes before JobRemoved, so MainPID is normally known by now;
        // ask only when it is not.
        let mut pid = seen;
        if pid == 0 {
            let upath = zbus::zvariant::OwnedObjectPath::try_from(path.clone())
                .map_err(|e| BackendError::Other(format!("{path}: {e}")))?;
            match self.main_pid(&upath) {
                Ok(p) => pid = p,
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(call_err(service, "reading MainPID", e)),
            }
        }
        let events = {
            let mut st = self.shared.lock();
            let Some(t) = st.tracks.get_mut(&path) else {
                return Err(BackendError::Other(format!("{name}: lost track")));
            };
            if pid == 0 {
                // Already over: the main process ended before we could read it.
                pid = t.exec_main_pid;
                t.ended = true;
            }
            t.ended_after_start();
            t.pid = pid;
            t.armed = true;
            t.take_exit()
        };
        self.shared.emit(events.into_iter().collect());
        if pid == 0 {
            return Err(BackendError::Start {
                unit: service.to_string(),
                message: format!("{name} started but systemd reports no main process"),
            });
        }
        Ok(pid)
    }
}

impl Backend for SystemdBackend {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn start(&mut self, spec: &UnitSpec) -> Result<u32, BackendError> {
        let submitted = self.submit_start(spec)?;
        self.finish_start(submitted)
    }

    fn start_many(&mut self, specs: &[UnitSpec]) -> Vec<Result<u32, BackendError>> {
        self.start_pipelined(specs)
    }

    fn signal(&mut self, unit: &str, signal: i32) -> Result<(), BackendError> {
        // KillUnit, not StopUnit: the core runs the stop sequence (signal, stop_timeout, kill)
        // itself, the same on both backends; StopUnit would add systemd's own timeout on top.
        let name = self.unit_name(unit);
        // A failed unit stays loaded (CollectMode=inactive) and KillUnit on it succeeds.
        let path = naming::unit_object_path(&name);
        let ended = self
            .shared
            .lock()
            .tracks
            .get(&path)
            .is_some_and(|t| t.ended);
        if ended {
            return Err(BackendError::NotRunning {
                unit: unit.to_string(),
            });
        }
        let manager = self.manager()?;
        manager.kill_unit(&name, "all", signal).map_err(|e| {
            if is_no_such_unit(&e) {
                BackendError::NotRunning {
                    unit: unit.to_string(),
                }
            } else {
                BackendError::Other(format!("{unit}: KillUnit {name}: {}", describe(&e)))
            }
        })?;
        // sysg stops it: our reference (kept for `systemctl start` after an outside stop) is
        // not needed, so a unit that ends cleanly is unloaded as before.
        if let Err(e) = manager.unref_unit(&name) {
            tracing::debug!("UnrefUnit {name}: {}", describe(&e));
        }
        Ok(())
    }

    fn kill(&mut self, unit: &str) -> Result<(), BackendError> {
        self.signal(unit, libc::SIGKILL)
    }

    fn adopt(&mut self, record: &AdoptRecord) -> Result<Option<u32>, BackendError> {
        let service = record.unit.as_str();
        let name = record
            .extra
            .get("unit_name")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.unit_name(service));
        // The state file is untrusted input: only the unit this backend gives the service
        // (`sysg-<project>-<service>.service`) is looked at, never a unit the record names.
        if name != self.unit_name(service) {
            return Err(BackendError::Untrusted {
                unit: service.to_string(),
                reason: format!("{name} is not the project's unit for it"),
            });
        }
        let path = naming::unit_object_path(&name);
        // Track first: an exit between the checks below and arming is still caught.
        let mut track = Track::new(service, &name);
        track.seen_active = true;
        // Only which notifications are reported depends on it: safe from an untrusted record.
        track.notify = record.extra.get("notify").and_then(|v| v.as_bool()) == Some(true);
        self.shared.lock().tracks.insert(path.clone(), track);
        let forget = |me: &Self| {
            me.shared.lock().tracks.remove(&path);
        };

        let manager = self.manager()?;
        let upath = match manager.get_unit(&name) {
            Ok(p) => p,
            Err(e) if is_no_such_unit(&e) => {
                forget(self);
                return Ok(None);
            }
            Err(e) => {
                forget(self);
                return Err(BackendError::Other(format!(
                    "{service}: looking up {name}: {}",
                    describe(&e)
                )));
            }
        };
        let state = self.unit_state(&upath);
        let pid = self.main_pid(&upath);
        let (state, pid) = match (state, pid) {
            (Ok(s), Ok(p)) => (s, p),
            (Err(e), _) | (_, Err(e)) if is_gone(&e) => {
                forget(self);
                return Ok(None);
            }
            (Err(e), _) | (_, Err(e)) => {
                forget(self);
                return Err(BackendError::Other(format!(
                    "{service}: reading {name}: {}",
                    describe(&e)
                )));
            }
        };
        let running = matches!(state.as_str(), "active" | "activating" | "reloading");
        if running {
            // Like `AddRef` at start: keep the unit loaded after a `systemctl stop`.
            if let Err(e) = manager.ref_unit(&name) {
                tracing::debug!("RefUnit {name}: {}", describe(&e));
            }
        }
        let same_start =
            record.start_time == 0 || proc_start_time(pid).is_some_and(|t| t == record.start_time);
        if !running || pid == 0 || pid != record.pid || !same_start {
            forget(self);
            return Ok(None);
        }
        let events = {
            let mut st = self.shared.lock();
            let Some(t) = st.tracks.get_mut(&path) else {
                return Ok(None);
            };
            t.pid = pid;
            t.main_pid = pid;
            if t.active_state.is_none() {
                t.active_state = Some(state.clone());
            }
            t.armed = true;
            t.take_exit()
        };
        let ended = events.is_some();
        self.shared.emit(events.into_iter().collect());
        // It ended while we looked: the exit was just reported, so it counts as adopted.
        let _ = ended;
        Ok(Some(pid))
    }

    fn records(&self) -> Vec<AdoptRecord> {
        let st = self.shared.lock();
        let mut out: Vec<AdoptRecord> = st
            .tracks
            .values()
            .filter(|t| t.armed && !t.ended && t.pid != 0)
            .map(|t| AdoptRecord {
                unit: t.service.clone(),
                pid: t.pid,
                start_time: proc_start_time(t.pid).unwrap_or(0),
                extra: serde_json::json!({ "unit_name": t.unit_name, "notify": t.notify }),
            })
            .collect();
        out.sort_by(|a, b| a.unit.cmp(&b.unit));
        out
    }

    fn release(&mut self) {
        // Every unit has stopped: no start will read an environment file again.
        envfiles::remove_all(self.env_dir.as_ref());
        // The project slice outlives its services; an empty one is stopped so that nothing
        // of the project stays loaded after `sysg stop`.
        let slice = naming::slice_name(&self.project);
        if let Ok(m) = self.manager() {
            if let Err(e) = m.stop_unit(&slice, "replace") {
                tracing::debug!("stopping {slice}: {e}");
            }
            // Failed services stay loaded while the project runs (`systemctl --failed`); once
            // it stops for good they are reset, so nothing of it stays loaded.
            let pattern = naming::project_pattern(&self.project);
            match m.list_units_by_patterns(&["failed"], &[pattern.as_str()]) {
                Ok(rows) => {
                    for row in rows {
                        if naming::service_of_unit(&self.project, &row.0).is_some() {
                            if let Err(e) = m.reset_failed_unit(&row.0) {
                                tracing::debug!("resetting {}: {e}", row.0);
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!("listing {pattern}: {e}"),
            }
            sockets::release(&m, &self.project);
            self.release_root_slice(&m);
            // Timers of the project's cron jobs, including any a crashed supervisor left.
            let pattern = naming::project_timer_pattern(&self.project);
            match m.list_units_by_patterns(&[], &[pattern.as_str()]) {
                Ok(rows) => {
                    for row in rows {
                        if naming::job_of_timer(&self.project, &row.0).is_some() {
                            if let Err(e) = m.stop_unit(&row.0, "replace") {
                                tracing::debug!("stopping {}: {e}", row.0);
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!("listing {pattern}: {e}"),
            }
        }
    }

    fn supports_timers(&self) -> bool {
        true
    }

    fn arm_timer(&mut self, spec: &UnitSpec, calendar: &str) -> Result<(), BackendError> {
        self.arm_timer_unit(spec, calendar)
    }

    fn disarm_timer(&mut self, unit: &str) -> Result<(), BackendError> {
        self.disarm_timer_unit(unit)
    }

    fn trigger(&mut self, unit: &str) -> Result<(), BackendError> {
        self.trigger_unit(unit)
    }

    fn discover(&self) -> Vec<AdoptRecord> {
        match self.list_project_units(&self.project) {
            Ok(units) => units
                .into_iter()
                .map(|(service, pid)| AdoptRecord {
                    extra: serde_json::json!({ "unit_name": self.unit_name(&service) }),
                    unit: service,
                    pid,
                    // Unknown: the unit name already identifies the process under systemd.
                    start_time: 0,
                })
                .collect(),
            Err(e) => {
                tracing::warn!("cannot list the project's systemd units: {e}");
                Vec::new()
            }
        }
    }
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub use crate::os::procfs::start_time as proc_start_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22() {
        let line = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 0";
        assert_eq!(
            crate::os::procfs::parse_stat(line).map(|s| s.start_time),
            Some(987654)
        );
        assert_eq!(crate::os::procfs::parse_stat("garbage"), None);
        let own = proc_start_time(std::process::id()).unwrap();
        assert!(own > 0);
    }
}
