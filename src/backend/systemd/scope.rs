//! Transient scopes for processes systemg forks itself (the process backend on a host whose
//! systemd answers over D-Bus): each unit's forked process is handed to systemd as
//! `sysg-<project>-<unit>.scope` in the project's slice, so it gets a cgroup of its own (for
//! non-root users too), is accounted to the project and shows in `systemctl [--user] status`.
//!
//! The process backend forks the child blocked on a pipe, calls `register`, and lets the child
//! go on only once systemd has moved it (the start job's `JobRemoved` came back `done`): nothing
//! the child starts can be left outside the scope. Calls go on one connection; the other only
//! drains `JobRemoved` signals (zbus stalls a connection whose signal queue is not read).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, MessageIterator};
use zbus::message::Type as MessageType;
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::MatchRule;

use super::proxies::ManagerProxy;
use super::{describe, is_no_such_unit, naming, properties, wait};
use crate::backend::{BackendError, ScopeHost};
use crate::spec::UnitSpec;

/// How long `register` waits for systemd to finish a job.
const JOB_TIMEOUT: Duration = Duration::from_secs(10);
/// Job results kept for a waiter that has not asked yet (the oldest go first).
const KEPT_RESULTS: usize = 1024;
/// How long `clear` waits for systemd to unload a stopped scope.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at creating a scope whose name an earlier scope still holds.
const ATTEMPTS: u32 = 3;

/// Job results as `JobRemoved` reports them.
#[derive(Default)]
struct Jobs {
    results: VecDeque<(String, String)>,
    /// Set when the signal connection ended: no result will come any more.
    dead: Option<String>,
}

struct Shared {
    jobs: Mutex<Jobs>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Registers forked processes as transient scopes with one systemd manager.
pub struct ScopeRegistrar {
    project: String,
    call: Connection,
    shared: Arc<Shared>,
}

impl ScopeRegistrar {
    /// Connect to the system manager (`system`) or the user's, and start draining job results.
    pub fn connect(system: bool, project: &str) -> Result<ScopeRegistrar, BackendError> {
        let call = super::bus(system)?;
        let events = super::bus(system)?;
        Self::with_connections(call, events, project)
    }

    /// Use two open connections to the same bus: `call` for calls, `events` for signals only.
    pub fn with_connections(
        call: Connection,
        events: Connection,
        project: &str,
    ) -> Result<ScopeRegistrar, BackendError> {
        super::manager_version(&call)?;
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender("org.freedesktop.systemd1")
            .and_then(|b| b.interface("org.freedesktop.systemd1.Manager"))
            .and_then(|b| b.member("JobRemoved"))
            .map(|b| b.build())
            .map_err(|e| BackendError::Other(format!("building the D-Bus match rule: {e}")))?;
        // In place before any job is requested, so no result can slip past. systemd sends a
        // job's `JobRemoved` to the client that asked for it even without `Subscribe()`, which
        // would make it broadcast every unit change of the host.
        let iter = MessageIterator::for_match_rule(rule, &events, Some(256))
            .map_err(|e| BackendError::Other(format!("watching systemd's job results: {e}")))?;
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Jobs::default()),
            changed: Condvar::new(),
        });
        let drained = shared.clone();
        std::thread::Builder::new()
            .name("systemd-scopes".into())
            .spawn(move || drain(iter, events, drained))
            .map_err(|e| BackendError::Io {
                context: "starting the systemd scope thread".into(),
                source: e,
            })?;
        Ok(ScopeRegistrar {
            project: project.to_string(),
            call,
            shared,
        })
    }

    fn manager(&self) -> Result<ManagerProxy<'_>, String> {
        ManagerProxy::new(&self.call).map_err(|e| format!("systemd: {e}"))
    }

    /// systemd's result for `job` (`done`, `failed`, ...).
    fn wait_job(&self, job: &str) -> Result<String, String> {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let ready = |st: &mut Jobs| {
            let i = st.results.iter().position(|(j, _)| j == job)?;
            Some(st.results.remove(i).map(|(_, r)| r).unwrap_or_default())
        };
        match wait::until(
            self.shared.lock(),
            &self.shared.changed,
            deadline,
            ready,
            |st| st.dead.as_ref(),
        ) {
            wait::Waited::Ready(r) => Ok(r),
            wait::Waited::Lost(why) => Err(format!("lost the connection to systemd: {why}")),
            wait::Waited::TimedOut => Err(format!(
                "systemd did not finish job {job} within {JOB_TIMEOUT:?}"
            )),
        }
    }

    /// Make the slice of a spawned child's tree with the tree's limits, once (as the systemd
    /// backend does, through the same function).
    fn ensure_tree_slice(&self, group: &crate::spec::SpawnGroup) {
        if let Ok(m) = self.manager() {
            super::ensure_tree_slice(&m, &self.project, group);
        }
    }

    /// Stop what an earlier scope of this name still holds (leftovers of a supervisor that
    /// never adopted them) and forget its failure, so that the name is free again.
    fn clear(&self, name: &str) -> Result<(), String> {
        let m = self.manager()?;
        match m.stop_unit(name, "replace") {
            Ok(job) => {
                tracing::info!("{name}: stopping the leftovers of an earlier instance");
                self.wait_job(job.as_str())?;
            }
            Err(e) if is_no_such_unit(&e) => {}
            Err(e) => return Err(format!("StopUnit {name}: {}", describe(&e))),
        }
        let _ = m.reset_failed_unit(name);
        // An inactive scope is unloaded by systemd's next garbage collection; until then its
        // name is taken. This path is rare (a restart racing the collection, leftovers), so a
        // short bounded poll is enough.
        let deadline = Instant::now() + UNLOAD_TIMEOUT;
        while m.get_unit(name).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Register a helper command's process (a probe, a hook): like `ScopeHost::register`, and
    /// systemd ends the scope once `runtime_max` has passed (`RuntimeMaxSec=`), so that the
    /// helper cannot outlive its timeout even when the supervisor is gone.
    pub fn register_helper(
        &self,
        spec: &UnitSpec,
        pid: u32,
        runtime_max: Duration,
    ) -> Result<String, BackendError> {
        self.register_scope(spec, pid, Some(runtime_max))
            .map_err(|message| BackendError::Start {
                unit: spec.name.clone(),
                message: format!("transient scope: {message}"),
            })
    }

    fn register_scope(
        &self,
        spec: &UnitSpec,
        pid: u32,
        runtime_max: Option<Duration>,
    ) -> Result<String, String> {
        let name = naming::scope_name(&self.project, &spec.name);
        naming::check_length(&name)?;
        if let Some(group) = &spec.spawn {
            self.ensure_tree_slice(group);
        }
        let mut props = scope_properties(spec, pid).map_err(|e| e.to_string())?;
        if let Some(t) = runtime_max {
            props.push((
                "RuntimeMaxUSec".into(),
                Value::U64(u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
            ));
        }
        let args: Vec<(&str, Value<'_>)> =
            props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let mut attempt = 0;
        let job: OwnedObjectPath = loop {
            attempt += 1;
            match self
                .manager()?
                .start_transient_unit(&name, "fail", &args, &[])
            {
                Ok(job) => break job,
                Err(e) if is_unit_exists(&e) && attempt < ATTEMPTS => self.clear(&name)?,
                Err(e) => return Err(format!("creating {name}: {}", describe(&e))),
            }
        };
        match self.wait_job(job.as_str())?.as_str() {
            "done" => Ok(name),
            other => Err(format!(
                "systemd could not start {name}: job result {other}"
            )),
        }
    }
}

impl ScopeHost for ScopeRegistrar {
    fn register(&self, spec: &UnitSpec, pid: u32) -> Result<String, BackendError> {
        self.register_scope(spec, pid, None)
            .map_err(|message| BackendError::Start {
                unit: spec.name.clone(),
                message: format!("transient scope: {message}"),
            })
    }

    fn scope_name(&self, unit: &str) -> String {
        naming::scope_name(&self.project, unit)
    }

    fn slice_name(&self, unit: &str) -> String {
        slice_of(&self.project, unit)
    }
}

/// The slice a unit's scope goes to: the project's, or for a spawned child (`service/child`)
/// its tree's, as on the systemd backend.
fn slice_of(project: &str, unit: &str) -> String {
    match unit.split_once('/') {
        Some((service, _)) => naming::tree_slice_name(project, service),
        None => naming::slice_name(project),
    }
}

fn is_unit_exists(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.systemd1.UnitExists")
}

/// The properties of the scope holding `pid` for `spec`: its slice, `Delegate=yes` (the
/// process backend kills through the cgroup), `limits.cgroup.*`, and a stop that behaves as
/// systemg's own when someone runs `systemctl stop` on it.
pub fn scope_properties(
    spec: &UnitSpec,
    pid: u32,
) -> Result<Vec<properties::Property>, properties::PropertyError> {
    let mut p: Vec<properties::Property> = vec![
        (
            "Description".into(),
            Value::from(format!(
                "{} (systemg project {}, forked)",
                spec.name, spec.project
            )),
        ),
        (
            "Slice".into(),
            Value::from(slice_of(&spec.project, &spec.name)),
        ),
        ("PIDs".into(), Value::from(vec![pid])),
        ("Delegate".into(), Value::Bool(true)),
        ("CollectMode".into(), Value::from("inactive-or-failed")),
        ("KillSignal".into(), Value::I32(spec.stop_signal)),
        (
            "TimeoutStopUSec".into(),
            Value::U64(u64::try_from(spec.stop_timeout.as_micros()).unwrap_or(u64::MAX)),
        ),
    ];
    properties::cgroup_limits(spec, &mut p)?;
    Ok(p)
}

/// The signal thread: keep every `JobRemoved` result until its waiter takes it.
fn drain(iter: MessageIterator, _conn: Connection, shared: Arc<Shared>) {
    for msg in iter {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("scope signal connection: {e}");
                continue;
            }
        };
        let Ok((_, job, _, result)) = msg
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        let mut st = shared.lock();
        if st.results.len() >= KEPT_RESULTS {
            st.results.pop_front();
        }
        st.results.push_back((job.as_str().to_string(), result));
        drop(st);
        shared.changed.notify_all();
    }
    shared.lock().dead = Some("the D-Bus connection closed".into());
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_and_slices() {
        assert_eq!(naming::scope_name("shop", "web"), "sysg-shop-web.scope");
        assert_eq!(
            naming::scope_name("shop", "web/w1"),
            "sysg-shop-web-w1.scope"
        );
        assert_eq!(slice_of("shop", "web"), "sysg-shop.slice");
        assert_eq!(slice_of("shop", "web/w1"), "sysg-shop-web.slice");
    }

    #[test]
    fn scope_properties_carry_pid_slice_delegation_and_limits() {
        use crate::config::schema::{CgroupLimits, Size};
        let mut spec = UnitSpec::new("shop", "web", vec!["true".into()]);
        spec.limits.cgroup = CgroupLimits {
            memory_max: Some(Size::Value(1 << 20)),
            cpu_max: None,
        };
        let p = scope_properties(&spec, 4242).unwrap();
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k}"))
        };
        assert_eq!(get("PIDs"), Value::from(vec![4242u32]));
        assert_eq!(get("PIDs").value_signature().to_string(), "au");
        assert_eq!(get("Slice"), Value::from("sysg-shop.slice"));
        assert_eq!(get("Delegate"), Value::Bool(true));
        assert_eq!(get("MemoryMax"), Value::U64(1 << 20));
        assert_eq!(get("KillSignal").value_signature().to_string(), "i");
        assert_eq!(get("TimeoutStopUSec").value_signature().to_string(), "t");
    }
}
