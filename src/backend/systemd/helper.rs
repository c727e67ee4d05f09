//! Helper commands of a service (command probes, hooks, a deployment's `pre_start` and
//! `switch_command`) as transient services `sysg-<project>-<service>.<kind>.<n>.service` in the
//! service's slice, built by the very function that builds the service's own unit
//! (`properties::service_properties`): a helper gets the service's user, groups, capabilities,
//! isolation, limits and sandbox from PID 1, whatever the supervisor's own are.
//!
//! The helper's stdout and stderr are the write end of the caller's pipe, handed to systemd
//! with the start call (`StandardOutputFileDescriptor`); its end comes from the unit's own
//! signals (`PropertiesChanged` of `ExecMainCode`/`ExecMainStatus`/`Result`, then
//! `ActiveState`), never from polling; `RuntimeMaxSec=` makes systemd kill it at its timeout
//! (result `timeout`). Calls go on one connection; the other only drains signals.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, MessageIterator};

pub use crate::backend::{HelperEnd, HelperRun};
use zbus::message::Type as MessageType;
use zbus::zvariant::{Fd, OwnedObjectPath, OwnedValue, Value};
use zbus::MatchRule;

use super::proxies::ManagerProxy;
use super::{describe, envfiles, naming, properties, wait};
use crate::backend::BackendError;
use crate::spec::{ExitStatus, UnitSpec};

/// How long systemd may take to start a helper's unit.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after its `RuntimeMaxSec=` a helper's end may still take to be reported before
/// the supervisor stops the unit itself (systemd kills with SIGKILL, so this is slack).
const END_SLACK: Duration = Duration::from_secs(5);
/// Job results kept for a waiter that has not asked yet.
const KEPT_RESULTS: usize = 1024;

/// What the signal thread saw of one helper unit.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// ExecMainCode (1 exited, 2 killed, 3 dumped) and ExecMainStatus.
    exec_main: Option<(i32, i32)>,
    result: Option<String>,
    active: Option<String>,
    job: Option<u32>,
    removed: bool,
    /// The unit's name, for `kill_running`.
    name: String,
}

impl Seen {
    /// The unit has run and is over: inactive or failed with no job queued, or unloaded.
    fn ended(&self) -> bool {
        self.removed
            || (matches!(self.active.as_deref(), Some("inactive" | "failed"))
                && self.job == Some(0))
    }
}

#[derive(Default)]
struct State {
    jobs: VecDeque<(String, String)>,
    /// Helper units being run, by object path.
    units: HashMap<String, Seen>,
    dead: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs a project's helper commands as transient services of one systemd manager.
pub struct HelperUnits {
    project: String,
    call: Connection,
    shared: Arc<Shared>,
    /// Where a helper's environment goes (as for services: never `Environment=`).
    env_dir: Option<PathBuf>,
    /// Tells this supervisor's helper units apart: `<pid>.<n>`.
    next: AtomicU64,
}

impl HelperUnits {
    /// Connect to the system manager (`system`) or the user's; `env_dir` is the backend's
    /// environment-file directory.
    pub fn connect(
        system: bool,
        project: &str,
        env_dir: Option<PathBuf>,
    ) -> Result<HelperUnits, BackendError> {
        let call = super::bus(system)?;
        let events = super::bus(system)?;
        Self::with_connections(call, events, project, env_dir)
    }

    /// Use two open connections to the same bus: `call` for calls, `events` for signals only.
    pub fn with_connections(
        call: Connection,
        events: Connection,
        project: &str,
        env_dir: Option<PathBuf>,
    ) -> Result<HelperUnits, BackendError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender("org.freedesktop.systemd1")
            .and_then(|b| b.path_namespace("/org/freedesktop/systemd1"))
            .map(|b| b.build())
            .map_err(|e| BackendError::Other(format!("building the D-Bus match rule: {e}")))?;
        let iter = MessageIterator::for_match_rule(rule, &events, Some(4096))
            .map_err(|e| BackendError::Other(format!("watching systemd's signals: {e}")))?;
        // A unit's PropertiesChanged goes out only to subscribed clients (or ones holding a
        // reference): subscribe ourselves rather than count on someone else doing it.
        ManagerProxy::new(&events)
            .and_then(|m| m.subscribe())
            .map_err(|e| BackendError::Other(format!("systemd Subscribe: {e}")))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let drained = shared.clone();
        let prefix = naming::unit_object_path(&naming::slice_name(project));
        let prefix = prefix
            .strip_suffix("_2eslice")
            .unwrap_or(&prefix)
            .to_string();
        std::thread::Builder::new()
            .name("systemd-helpers".into())
            .spawn(move || drain(iter, events, drained, prefix))
            .map_err(|e| BackendError::Io {
                context: "starting the systemd helper thread".into(),
                source: e,
            })?;
        Ok(HelperUnits {
            project: project.to_string(),
            call,
            shared,
            env_dir,
            next: AtomicU64::new(0),
        })
    }

    fn manager(&self) -> Result<ManagerProxy<'_>, BackendError> {
        ManagerProxy::new(&self.call).map_err(|e| BackendError::Other(format!("systemd: {e}")))
    }

    /// Run `run` to its end, its output going to `output` (the write end of a pipe, closed here
    /// once systemd has its copy).
    pub fn run(&self, run: &HelperRun<'_>, output: OwnedFd) -> Result<HelperEnd, BackendError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut spec = helper_spec(run, &format!("{}.{n}", std::process::id()));
        spec.project = self.project.clone();
        let name = naming::unit_name(&spec.project, &spec.name);
        let err = |message: String| BackendError::Start {
            unit: run.spec.name.clone(),
            message: format!("{} as {name}: {message}", run.kind),
        };
        naming::check_length(&name).map_err(err)?;
        let path = naming::unit_object_path(&name);
        let mut props = helper_properties(&spec, run.timeout).map_err(|e| err(e.to_string()))?;
        let key = spec.name.clone();
        if let (Some(dir), false) = (&self.env_dir, spec.env.is_empty()) {
            let file = envfiles::write(dir, &key, &properties::environment_file(&spec.env))
                .map_err(|e| err(format!("writing its environment file: {e}")))?;
            properties::use_environment_file(&mut props, &file.to_string_lossy());
        }
        let _env_file = EnvFile(self.env_dir.as_ref(), key);
        self.shared
            .lock()
            .units
            .insert(path.clone(), Seen::default());
        let _forget = Forget(&self.shared, &path);
        let mut args: Vec<(&str, Value<'_>)> =
            props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        args.push(("StandardInput", Value::from("null")));
        args.push(("StandardOutputFileDescriptor", Value::Fd(Fd::from(&output))));
        args.push(("StandardErrorFileDescriptor", Value::Fd(Fd::from(&output))));
        let job = self
            .manager()?
            .start_transient_unit(&name, "fail", &args, &[])
            .map_err(|e| err(describe(&e)))?;
        drop(args);
        // systemd holds its own copies now; ours must go for the reader to see the end.
        drop(output);
        let started = Instant::now();
        let result = self.wait(started + START_TIMEOUT, |st| {
            let i = st.jobs.iter().position(|(j, _)| j == job.as_str())?;
            st.jobs.remove(i).map(|(_, r)| r)
        });
        let result = result.map_err(|why| {
            // Whatever systemd made of it, it must not run on unwatched.
            if let Ok(m) = self.manager() {
                let _ = m.kill_unit(&name, "all", libc::SIGKILL);
            }
            err(why)
        })?;
        if result != "done" {
            // A helper that exits at once can end before systemd completes the start job, which
            // then fails although the program ran: its end is in the unit's signals, which
            // systemd flushes before the job's result.
            let seen = self.shared.lock().units.get(&path).cloned();
            if let Some(seen) = seen.as_ref().filter(|s| ran_then_ended(s)) {
                return Ok(end_of(seen));
            }
            return Err(err(start_failure(&result, seen.as_ref())));
        }
        let deadline = Instant::now() + run.timeout + END_SLACK;
        match self.wait(deadline, |st| {
            st.units.get(&path).filter(|s| s.ended()).cloned()
        }) {
            Ok(seen) => Ok(end_of(&seen)),
            Err(why) => {
                tracing::warn!(unit = %run.spec.name, "{name}: {why}; stopping it");
                let _ = self.manager()?.kill_unit(&name, "all", libc::SIGKILL);
                Ok(HelperEnd::TimedOut)
            }
        }
    }

    /// SIGKILL every helper unit still running (the supervisor is leaving: nothing it started
    /// may outlive it); returns how many there were. Their runs then end as killed.
    pub fn kill_running(&self) -> usize {
        let names: Vec<String> = self
            .shared
            .lock()
            .units
            .values()
            .filter(|s| !s.ended())
            .map(|s| s.name.clone())
            .collect();
        if let Ok(m) = self.manager() {
            for name in &names {
                let _ = m.kill_unit(name, "all", libc::SIGKILL);
            }
        }
        names.len()
    }

    /// Wait until `ready` finds something in the state, or `deadline`.
    fn wait<T>(
        &self,
        deadline: Instant,
        ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, String> {
        match wait::until(
            self.shared.lock(),
            &self.shared.changed,
            deadline,
            ready,
            |st| st.dead.as_ref(),
        ) {
            wait::Waited::Ready(v) => Ok(v),
            wait::Waited::Lost(why) => Err(format!("lost the connection to systemd: {why}")),
            wait::Waited::TimedOut => Err("systemd did not report its end in time".into()),
        }
    }
}

/// Removes a helper's environment file when its run is over.
struct EnvFile<'a>(Option<&'a PathBuf>, String);

impl Drop for EnvFile<'_> {
    fn drop(&mut self) {
        envfiles::remove(self.0, &self.1);
    }
}

/// Stops following a helper's unit when its run is over.
struct Forget<'a>(&'a Shared, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.lock().units.remove(self.1);
    }
}

/// The helper's own spec: the service's, with the helper's command, environment and name
/// (`<service>.<kind>.<id>`). Not the service's readiness: a helper is a one-off that never
/// sends READY=1 (as `Type=notify` it would wait for one), nor pets a watchdog.
pub fn helper_spec(run: &HelperRun<'_>, id: &str) -> UnitSpec {
    let mut spec = run.spec.clone();
    spec.name = format!("{}.{}.{id}", run.spec.name, run.kind);
    spec.argv = vec!["/bin/sh".into(), "-c".into(), run.command.to_string()];
    spec.env = run.env.to_vec();
    spec.readiness = crate::spec::Readiness::default();
    spec
}

/// The unit properties of a helper: the service's own (`service_properties`, so whatever the
/// service's unit gets — identity, capabilities, isolation, limits, sandbox — the helper gets),
/// then what makes it a bounded one-off: `RuntimeMaxSec=` its timeout, killed at once and in
/// whole (SIGKILL to the cgroup, as the process backend kills a helper's group), unloaded when
/// over, and no journal (its output goes to the supervisor through the caller's pipe).
pub fn helper_properties(
    spec: &UnitSpec,
    timeout: Duration,
) -> Result<Vec<properties::Property>, properties::PropertyError> {
    let mut p = properties::service_properties(spec)?;
    p.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "Description"
                | "CollectMode"
                | "KillSignal"
                | "TimeoutStopUSec"
                | "StandardOutput"
                | "StandardError"
                | "SyslogIdentifier"
                | "LogRateLimitBurst"
                | "Restart"
        )
    });
    let usec = |d: Duration| Value::U64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    p.push((
        "Description".into(),
        Value::from(format!(
            "{} (systemg project {}, helper)",
            spec.name, spec.project
        )),
    ));
    p.push(("RuntimeMaxUSec".into(), usec(timeout)));
    p.push(("KillSignal".into(), Value::I32(libc::SIGKILL)));
    p.push(("TimeoutStopUSec".into(), usec(Duration::from_secs(5))));
    p.push(("CollectMode".into(), Value::from("inactive-or-failed")));
    Ok(p)
}

/// How an ended helper ended, from what its unit's signals said.
fn end_of(seen: &Seen) -> HelperEnd {
    if seen.result.as_deref() == Some("timeout") {
        return HelperEnd::TimedOut;
    }
    HelperEnd::Exited(match seen.exec_main {
        Some((1, c)) => ExitStatus::Code(c),
        Some((2 | 3, s)) => ExitStatus::Signal(s),
        _ => ExitStatus::Unknown,
    })
}

/// The program ran and ended (an exit status that is not one of systemd's set-up failures, or
/// a signal), as opposed to a unit systemd could not set up.
fn ran_then_ended(seen: &Seen) -> bool {
    match seen.exec_main {
        Some((1, status)) => !super::is_systemd_exit_code(status),
        Some((2 | 3, _)) => true,
        _ => false,
    }
}

/// A start job that did not end `done`, in words.
fn start_failure(result: &str, seen: Option<&Seen>) -> String {
    let mut msg = format!("systemd could not start it: job {result}");
    if let Some(r) = seen.and_then(|s| s.result.as_deref()) {
        msg.push_str(&format!(", result {r}"));
    }
    if let Some((1, s)) = seen.and_then(|s| s.exec_main) {
        msg.push_str(&format!(", set-up exit status {s}"));
    }
    msg
}

fn get<'a>(m: &'a HashMap<String, OwnedValue>, k: &str) -> Option<&'a Value<'static>> {
    m.get(k).map(|v| &**v)
}

/// The signal thread: job results of the project's units, and what the helper units being
/// run report about themselves.
fn drain(iter: MessageIterator, _conn: Connection, shared: Arc<Shared>, prefix: String) {
    for msg in iter {
        let Ok(msg) = msg else { continue };
        let header = msg.header();
        let (Some(member), Some(path)) = (header.member(), header.path()) else {
            continue;
        };
        let mut st = shared.lock();
        match member.as_str() {
            "JobRemoved" => {
                let Ok((_, job, unit, result)) = msg
                    .body()
                    .deserialize::<(u32, OwnedObjectPath, String, String)>()
                else {
                    continue;
                };
                if !naming::unit_object_path(&unit).starts_with(&prefix) {
                    continue;
                }
                if st.jobs.len() >= KEPT_RESULTS {
                    st.jobs.pop_front();
                }
                st.jobs.push_back((job.as_str().to_string(), result));
            }
            "UnitRemoved" => {
                let Ok((_, unit)) = msg.body().deserialize::<(String, OwnedObjectPath)>() else {
                    continue;
                };
                match st.units.get_mut(unit.as_str()) {
                    Some(s) => s.removed = true,
                    None => continue,
                }
            }
            "PropertiesChanged" => {
                let Some(seen) = st.units.get_mut(path.as_str()) else {
                    continue;
                };
                let Ok((iface, changed, _)) =
                    msg.body()
                        .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
                else {
                    continue;
                };
                apply(seen, &iface, &changed);
            }
            _ => continue,
        }
        drop(st);
        shared.changed.notify_all();
    }
    shared.lock().dead = Some("the D-Bus connection closed".into());
    shared.changed.notify_all();
}

/// Take in one `PropertiesChanged` of a helper's unit.
fn apply(seen: &mut Seen, iface: &str, changed: &HashMap<String, OwnedValue>) {
    match iface {
        "org.freedesktop.systemd1.Service" => {
            let code = get(changed, "ExecMainCode").and_then(|v| i32::try_from(v).ok());
            let status = get(changed, "ExecMainStatus").and_then(|v| i32::try_from(v).ok());
            if let (Some(c), Some(s)) = (code, status) {
                if c != 0 {
                    seen.exec_main = Some((c, s));
                }
            }
            if let Some(Value::Str(r)) = get(changed, "Result") {
                seen.result = Some(r.to_string());
            }
        }
        "org.freedesktop.systemd1.Unit" => {
            if let Some(Value::Str(a)) = get(changed, "ActiveState") {
                seen.active = Some(a.to_string());
            }
            if let Some(Value::Structure(s)) = get(changed, "Job") {
                if let Some(Value::U32(id)) = s.fields().first() {
                    seen.job = Some(*id);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(v: Value<'_>) -> OwnedValue {
        v.try_to_owned().unwrap()
    }

    #[test]
    fn a_helper_gets_the_services_properties_and_is_bounded() {
        let mut svc = UnitSpec::new("shop", "web", vec!["sleep".into(), "100".into()]);
        svc.user = Some("nobody".into());
        svc.capabilities = Some(vec!["CAP_NET_BIND_SERVICE".into()]);
        svc.isolation.network = true;
        svc.sandbox.no_new_privileges = true;
        svc.sandbox.private_tmp = true;
        let env = vec![("A".to_string(), "1".to_string())];
        let run = HelperRun {
            spec: &svc,
            kind: "probe",
            command: "test -f /x",
            env: &env,
            timeout: Duration::from_millis(1500),
        };
        let spec = helper_spec(&run, "7.3");
        assert_eq!(spec.name, "web.probe.7.3");
        assert_eq!(
            naming::unit_name("shop", &spec.name),
            "sysg-shop-web.probe.7.3.service"
        );
        let p = helper_properties(&spec, run.timeout).unwrap();
        let get = |k: &str| {
            let all: Vec<_> = p.iter().filter(|(n, _)| n == k).collect();
            assert!(all.len() <= 1, "{k} twice");
            all.first().map(|(_, v)| v.clone())
        };
        // The service's own translation: every property it has, the helper has.
        let service = properties::service_properties(&svc).unwrap();
        for (k, v) in &service {
            if !matches!(
                k.as_str(),
                "Description"
                    | "ExecStart"
                    | "Environment"
                    | "CollectMode"
                    | "KillSignal"
                    | "TimeoutStopUSec"
                    | "StandardOutput"
                    | "StandardError"
                    | "SyslogIdentifier"
                    | "LogRateLimitBurst"
            ) {
                assert_eq!(get(k).as_ref(), Some(v), "{k}");
            }
        }
        assert_eq!(get("User"), Some(Value::from("nobody")));
        assert_eq!(get("PrivateNetwork"), Some(Value::Bool(true)));
        assert_eq!(get("NoNewPrivileges"), Some(Value::Bool(true)));
        assert_eq!(get("PrivateTmp"), Some(Value::Bool(true)));
        assert!(get("AmbientCapabilities").is_some());
        assert_eq!(get("Type"), Some(Value::from("exec")));
        assert_eq!(get("RuntimeMaxUSec"), Some(Value::U64(1_500_000)));
        assert_eq!(get("KillSignal"), Some(Value::I32(libc::SIGKILL)));
        assert_eq!(get("CollectMode"), Some(Value::from("inactive-or-failed")));
        assert_eq!(get("Slice"), Some(Value::from("sysg-shop.slice")));
        assert_eq!(get("StandardOutput"), None);
        assert_eq!(get("Restart"), None);
        let exec: Vec<(String, Vec<String>, bool)> = vec![(
            "/bin/sh".into(),
            vec!["/bin/sh".into(), "-c".into(), "test -f /x".into()],
            false,
        )];
        assert_eq!(get("ExecStart"), Some(Value::from(exec)));
        assert_eq!(
            get("Environment"),
            Some(Value::from(vec!["A=1".to_string()]))
        );
    }

    #[test]
    fn a_helper_of_a_notify_service_is_no_notify_unit() {
        let mut svc = UnitSpec::new("shop", "web", vec!["sleep".into(), "100".into()]);
        svc.readiness.notify = true;
        svc.readiness.watchdog = Some(Duration::from_secs(5));
        let run = HelperRun {
            spec: &svc,
            kind: "reload",
            command: "true",
            env: &[],
            timeout: Duration::from_secs(3),
        };
        let p = helper_properties(&helper_spec(&run, "1"), run.timeout).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("Type"), Some(Value::from("exec")));
        assert_eq!(get("WatchdogUSec"), None);
        assert_eq!(get("NotifyAccess"), None);
    }

    #[test]
    fn the_end_comes_from_the_units_signals() {
        let mut seen = Seen::default();
        let svc: HashMap<String, OwnedValue> = [
            ("ExecMainCode".to_string(), ov(Value::I32(1))),
            ("ExecMainStatus".to_string(), ov(Value::I32(3))),
            ("Result".to_string(), ov(Value::from("exit-code"))),
        ]
        .into();
        apply(&mut seen, "org.freedesktop.systemd1.Service", &svc);
        assert!(!seen.ended());
        let job = zbus::zvariant::StructureBuilder::new()
            .add_field(0u32)
            .add_field(zbus::zvariant::ObjectPath::try_from("/").unwrap())
            .build()
            .unwrap();
        let unit: HashMap<String, OwnedValue> = [
            ("ActiveState".to_string(), ov(Value::from("failed"))),
            ("Job".to_string(), ov(Value::Structure(job))),
        ]
        .into();
        apply(&mut seen, "org.freedesktop.systemd1.Unit", &unit);
        assert!(seen.ended());
        assert_eq!(end_of(&seen), HelperEnd::Exited(ExitStatus::Code(3)));
        assert!(ran_then_ended(&seen));
        seen.exec_main = Some((1, 203));
        assert!(!ran_then_ended(&seen), "203 is systemd's exec failure");
        seen.exec_main = Some((1, 3));
        seen.result = Some("timeout".into());
        assert_eq!(end_of(&seen), HelperEnd::TimedOut);
        seen.result = Some("signal".into());
        seen.exec_main = Some((2, 9));
        assert_eq!(end_of(&seen), HelperEnd::Exited(ExitStatus::Signal(9)));
    }
}
