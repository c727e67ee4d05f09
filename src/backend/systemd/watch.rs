//! The signal thread: drains systemd's signals on its own connection and turns them into unit
//! state and `BackendEvent`s: `Exited` for units `start` started (`StoppedOutside` and
//! `StartedOutside` for what `systemctl` did to them, see outside.rs), and for cron jobs run by a
//! timer `Elapsed` (the timer's `LastTriggerUSec` moved) and `Started`/`Exited` per run.
//!
//! A timer's service runs again and again under one name, and systemd may fold a short run's
//! start and end into one `PropertiesChanged`; runs are therefore told apart by
//! `ExecMainStartTimestamp` (new value: a new run) and ended by `ExecMainExitTimestamp`, never
//! by watching `ActiveState` go by.
//!
//! The thread never makes D-Bus calls (a call waiting on a connection whose queue is full of
//! unread signals would deadlock), so everything it learns comes from signal payloads. That is
//! also the only way to get a unit's exit status: with `CollectMode=inactive` systemd unloads a
//! unit that ended cleanly right away (a failed one stays loaded until reset), so
//! ExecMainCode/ExecMainStatus must be captured from the `PropertiesChanged` that announced the
//! end.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use zbus::blocking::{Connection, MessageIterator};
use zbus::message::Type as MessageType;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::MatchRule;

use crate::backend::{BackendError, BackendEvent, EventSink};
use crate::spec::ExitStatus;

use super::naming;

/// Signals kept queued for the thread before zbus stops reading: generous, because a full
/// queue stalls the whole connection.
const QUEUE: usize = 4096;

/// What a track follows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// A unit `start` started (or `adopt` found): one process, one exit.
    #[default]
    Service,
    /// The service of a cron job's timer: one run after another.
    TimerRuns,
    /// A cron job's timer.
    Timer,
}

/// What the backend knows about one unit it started or adopted, keyed by object path.
#[derive(Debug, Default, Clone)]
pub struct Track {
    pub kind: TrackKind,
    /// A `readiness: notify` unit: its `StatusText`, readiness, reloads and `Result`s of
    /// `timeout`/`watchdog` are reported as `BackendEvent::Notify`.
    pub notify: bool,
    /// Wall-clock µs when the track was made. A run or trigger stamped earlier belongs to an
    /// earlier unit of the same name whose last signals were still queued.
    pub created_usec: u64,
    /// TimerRuns: `ExecMainStartTimestamp` of the run last reported as started.
    pub run_started_at: u64,
    /// TimerRuns: a run was reported started and its end not yet.
    pub run_open: bool,
    /// Timer: the last `LastTriggerUSec` seen.
    pub last_trigger: u64,
    /// The service (core unit) name.
    pub service: String,
    /// The systemd unit name.
    pub unit_name: String,
    /// `start` returned (or `adopt` succeeded): the end of this unit is reported.
    pub armed: bool,
    /// The end was reported; never report twice.
    pub reported: bool,
    /// The main pid returned by `start`/`adopt`.
    pub pid: u32,
    /// Last non-zero MainPID seen.
    pub main_pid: u32,
    /// ExecMainPID: stays set after the main process ended.
    pub exec_main_pid: u32,
    /// ExecMainCode (1 exited, 2 killed, 3 dumped) and ExecMainStatus.
    pub exec_main: Option<(i32, i32)>,
    /// Service `Result` (`success`, `exit-code`, `signal`, ...).
    pub result: Option<String>,
    pub active_state: Option<String>,
    /// Id of the unit's pending job, 0 when none.
    pub job_id: Option<u32>,
    /// The unit was seen `active`: an `inactive` after that is an end, not the state before start.
    pub seen_active: bool,
    /// The start job `start` is waiting for.
    pub start_job: Option<String>,
    /// `JobRemoved` results for this unit: (job path, result).
    pub jobs_done: Vec<(String, String)>,
    /// The unit ended (terminal state, or removed after it started).
    pub ended: bool,
    /// A job sysg did not ask for (`systemctl stop`) is pending or ran while the unit was up:
    /// its end is a stop by the operator. Cleared when such a job finishes with the unit up.
    pub outside_job: bool,
    /// systemd unloaded the unit.
    pub removed: bool,
}

impl Track {
    /// A fresh track for a unit about to be started or adopted.
    pub fn new(service: &str, unit_name: &str) -> Track {
        Track {
            service: service.to_string(),
            unit_name: unit_name.to_string(),
            ..Track::default()
        }
    }

    /// A track for the timer of the cron job `service`.
    pub fn timer(service: &str, unit_name: &str, created_usec: u64) -> Track {
        Track {
            kind: TrackKind::Timer,
            created_usec,
            ..Track::new(service, unit_name)
        }
    }

    /// A track for the service a cron job's timer starts.
    pub fn timer_runs(service: &str, unit_name: &str, created_usec: u64) -> Track {
        Track {
            kind: TrackKind::TimerRuns,
            created_usec,
            ..Track::new(service, unit_name)
        }
    }

    /// The result of the start job, once systemd reported it.
    pub fn start_job_result(&self) -> Option<&str> {
        let job = self.start_job.as_deref()?;
        self.jobs_done
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, r)| r.as_str())
    }

    /// How the main process ended, from the captured ExecMain* values.
    pub fn exit_status(&self) -> ExitStatus {
        match self.exec_main {
            Some((1, status)) => ExitStatus::Code(status),
            Some((2 | 3, sig)) => ExitStatus::Signal(sig),
            _ => ExitStatus::Unknown,
        }
    }

    /// The event to send now, if the unit ended and that was not reported yet. Marks it reported.
    pub fn take_exit(&mut self) -> Option<BackendEvent> {
        if !(self.armed && self.ended) || self.reported {
            return None;
        }
        self.reported = true;
        let pid = if self.pid != 0 {
            self.pid
        } else {
            self.exec_main_pid
        };
        let (unit, status) = (self.service.clone(), self.exit_status());
        Some(if self.outside_job {
            BackendEvent::StoppedOutside { unit, pid, status }
        } else {
            BackendEvent::Exited { unit, pid, status }
        })
    }
}

/// State shared by the backend (calls) and the signal thread.
pub struct Shared {
    units: Mutex<State>,
    /// Signalled on every change, for `start`/`adopt` waiting on a job or a removal.
    pub changed: Condvar,
    sink: EventSink,
    /// Where units' environment files live (`SystemdBackend::with_env_dir`): a service's file
    /// is removed when systemd unloads its unit.
    pub env_dir: std::sync::OnceLock<std::path::PathBuf>,
}

/// The tracks plus whether the signal thread still runs.
#[derive(Default)]
pub struct State {
    pub tracks: HashMap<String, Track>,
    /// The signal connection ended: no more events will come.
    pub dead: Option<String>,
}

impl Shared {
    /// Shared state reporting to `sink`.
    pub fn new(sink: EventSink) -> Arc<Shared> {
        Arc::new(Shared {
            units: Mutex::new(State::default()),
            changed: Condvar::new(),
            sink,
            env_dir: std::sync::OnceLock::new(),
        })
    }

    /// Lock the state; a poisoned lock (a panic elsewhere) still holds consistent data.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.units.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send events, outside the lock.
    pub fn emit(&self, events: Vec<BackendEvent>) {
        for ev in events {
            (self.sink)(ev);
        }
    }
}

/// One decoded signal.
#[derive(Debug)]
enum Signal {
    JobRemoved {
        job: String,
        unit: String,
        result: String,
    },
    UnitRemoved {
        path: String,
    },
    Props {
        path: String,
        iface: String,
        changed: HashMap<String, OwnedValue>,
    },
}

/// Start watching: `Subscribe()` and the match rule are in place when this returns, so a unit
/// started afterwards cannot slip a signal past it.
pub fn spawn(events: Connection, shared: Arc<Shared>) -> Result<(), BackendError> {
    let rule = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender("org.freedesktop.systemd1")
        .and_then(|b| b.path_namespace("/org/freedesktop/systemd1"))
        .map(|b| b.build())
        .map_err(|e| BackendError::Other(format!("building the D-Bus match rule: {e}")))?;
    let iter = MessageIterator::for_match_rule(rule, &events, Some(QUEUE))
        .map_err(|e| BackendError::Other(format!("watching systemd's signals: {e}")))?;
    // Subscribe after the match exists, on the same connection: systemd only broadcasts unit
    // and job signals while some client is subscribed.
    super::proxies::ManagerProxy::new(&events)
        .and_then(|m| m.subscribe())
        .map_err(|e| BackendError::Other(format!("subscribing to systemd's signals: {e}")))?;
    std::thread::Builder::new()
        .name("systemd-signals".into())
        .spawn(move || run(iter, events, shared))
        .map(|_| ())
        .map_err(|e| BackendError::Io {
            context: "starting the systemd signal thread".into(),
            source: e,
        })
}

fn run(iter: MessageIterator, _conn: Connection, shared: Arc<Shared>) {
    let unit_prefix = format!(
        "{}/{}",
        naming::UNIT_PATH_BASE,
        naming::bus_label_escape(naming::PREFIX)
    );
    let mut why = "the D-Bus connection closed".to_string();
    for msg in iter {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                why = format!("reading systemd's signals failed: {e}");
                break;
            }
        };
        let Some(sig) = decode(&msg, &unit_prefix) else {
            continue;
        };
        let events = {
            let mut st = shared.lock();
            let removal = match &sig {
                Signal::UnitRemoved { path } => st
                    .tracks
                    .get(path)
                    .filter(|t| t.kind == TrackKind::Service && !t.removed)
                    .map(|t| (path.clone(), t.service.clone())),
                _ => None,
            };
            let events = apply(&mut st, sig);
            // Under the lock: a new start of the same service writes its file only after it
            // saw the old instance removed, so this never deletes the new one.
            if let Some((path, service)) = removal {
                if st.tracks.get(&path).is_some_and(|t| t.removed) {
                    super::envfiles::remove(shared.env_dir.get(), &service);
                }
            }
            events
        };
        shared.changed.notify_all();
        shared.emit(events);
    }
    tracing::error!("systemd backend: {why}; unit exits will no longer be noticed");
    shared.lock().dead = Some(why);
    shared.changed.notify_all();
}

fn decode(msg: &zbus::Message, unit_prefix: &str) -> Option<Signal> {
    let header = msg.header();
    let member = header.member()?.as_str().to_string();
    let path = header.path()?.as_str().to_string();
    let body = msg.body();
    match member.as_str() {
        "JobRemoved" => {
            let (_id, job, unit, result): (u32, OwnedObjectPath, String, String) =
                body.deserialize().ok()?;
            unit.starts_with(naming::PREFIX)
                .then(|| Signal::JobRemoved {
                    job: job.as_str().to_string(),
                    unit,
                    result,
                })
        }
        "UnitRemoved" => {
            let (unit, upath): (String, OwnedObjectPath) = body.deserialize().ok()?;
            unit.starts_with(naming::PREFIX)
                .then(|| Signal::UnitRemoved {
                    path: upath.as_str().to_string(),
                })
        }
        "PropertiesChanged" if path.starts_with(unit_prefix) => {
            let (iface, changed, _invalidated): (String, HashMap<String, OwnedValue>, Vec<String>) =
                body.deserialize().ok()?;
            Some(Signal::Props {
                path,
                iface,
                changed,
            })
        }
        _ => None,
    }
}

/// Apply one signal to the tracks; returns the events to send. Pure apart from the state, so it
/// is unit-tested without a bus.
fn apply(st: &mut State, sig: Signal) -> Vec<BackendEvent> {
    let mut out = Vec::new();
    match sig {
        Signal::JobRemoved { job, unit, result } => {
            let path = naming::unit_object_path(&unit);
            if let Some(t) = st.tracks.get_mut(&path) {
                t.jobs_done.push((job, result));
                // A process that died at once can have its `active` folded into the
                // `inactive` systemd flushed before this result: once the start job is over,
                // that state is its end. (Before failed units stayed loaded, the unit's
                // removal reported it; a unit we hold a reference on is never removed.)
                if t.ended_after_start() {
                    out.extend(t.take_exit());
                }
            }
        }
        Signal::UnitRemoved { path } => {
            if let Some(t) = st
                .tracks
                .get_mut(&path)
                .filter(|t| t.kind != TrackKind::Service)
            {
                t.removed = true;
                if t.run_open {
                    // Unloaded before its end was seen (this should not happen: the end comes
                    // first); the run is over all the same.
                    t.run_open = false;
                    out.push(BackendEvent::Exited {
                        unit: t.service.clone(),
                        pid: t.pid,
                        status: ExitStatus::Unknown,
                    });
                }
            } else if let Some(t) = st.tracks.get_mut(&path) {
                // A removal before our start job finished belongs to an earlier instance of
                // the same name; after it, this instance is gone. A unit last seen up is not
                // gone: `systemctl daemon-reload` removes and re-creates every unit, and
                // systemd never unloads a unit that is not inactive.
                let up = matches!(
                    t.active_state.as_deref(),
                    Some("active" | "activating" | "deactivating" | "reloading")
                );
                if !up && (t.start_job_result().is_some() || t.start_job.is_none() && t.armed) {
                    t.removed = true;
                    t.ended = true;
                    out.extend(t.take_exit());
                }
            }
        }
        Signal::Props {
            path,
            iface,
            changed,
        } => {
            let Some(t) = st.tracks.get_mut(&path) else {
                return out;
            };
            match t.kind {
                TrackKind::Service => {}
                TrackKind::TimerRuns => {
                    if iface.ends_with(".Service") {
                        timer_run(t, &changed, &mut out);
                    }
                    return out;
                }
                TrackKind::Timer => {
                    if iface.ends_with(".Timer") {
                        let trigger = get_u64(&changed, "LastTriggerUSec").unwrap_or(0);
                        if trigger != 0 && trigger != t.last_trigger && trigger >= t.created_usec {
                            t.last_trigger = trigger;
                            out.push(BackendEvent::Elapsed {
                                unit: t.service.clone(),
                            });
                        }
                    }
                    return out;
                }
            }
            if iface.ends_with(".Service") {
                if let Some(pid) = get_u32(&changed, "MainPID").filter(|p| *p != 0) {
                    t.main_pid = pid;
                }
                if let Some(pid) = get_u32(&changed, "ExecMainPID").filter(|p| *p != 0) {
                    t.exec_main_pid = pid;
                }
                if let (Some(code), Some(status)) = (
                    get_i32(&changed, "ExecMainCode"),
                    get_i32(&changed, "ExecMainStatus"),
                ) {
                    if code != 0 {
                        t.exec_main = Some((code, status));
                    }
                }
                let result = get_str(&changed, "Result");
                let status = get_str(&changed, "StatusText");
                super::readiness::service_changed(t, result.as_deref(), status, &mut out);
                if let Some(r) = result {
                    t.result = Some(r);
                }
            } else if iface.ends_with(".Unit") {
                if let Some(s) = get_str(&changed, "ActiveState") {
                    if s == "active" {
                        t.seen_active = true;
                    }
                    super::readiness::state_changed(t, &s, &mut out);
                    t.active_state = Some(s);
                }
                if let Some(id) = get_job_id(&changed) {
                    t.job_id = Some(id);
                }
                t.unit_changed(&mut out);
                let terminal = matches!(t.active_state.as_deref(), Some("inactive" | "failed"));
                // systemd-run's rule: terminal state *and* no job pending. `seen_active` keeps
                // the `inactive` a unit has before its start job runs from counting as an end.
                // A start job already over counts as well: a process that died at once may
                // never show `active` (activating → inactive).
                let started = t.seen_active || t.start_job_result().is_some();
                if terminal && t.job_id == Some(0) && started {
                    t.ended = true;
                    out.extend(t.take_exit());
                }
            }
        }
    }
    out
}

/// One `Service` property change of a timer's service: a new `ExecMainStartTimestamp` is a new
/// run, an `ExecMainExitTimestamp` with a code its end.
fn timer_run(t: &mut Track, changed: &HashMap<String, OwnedValue>, out: &mut Vec<BackendEvent>) {
    let started = get_u64(changed, "ExecMainStartTimestamp").unwrap_or(0);
    let pid = get_u32(changed, "ExecMainPID").unwrap_or(0);
    if started != 0 && pid != 0 && started != t.run_started_at && started >= t.created_usec {
        if t.run_open {
            // The previous run's end never showed (it cannot, but never report two live runs).
            out.push(BackendEvent::Exited {
                unit: t.service.clone(),
                pid: t.pid,
                status: ExitStatus::Unknown,
            });
        }
        t.run_started_at = started;
        t.run_open = true;
        t.pid = pid;
        t.exec_main = None;
        out.push(BackendEvent::Started {
            unit: t.service.clone(),
            pid,
        });
    }
    if !t.run_open || started != t.run_started_at {
        return;
    }
    let ended = get_u64(changed, "ExecMainExitTimestamp").unwrap_or(0);
    if let (Some(code), Some(status)) = (
        get_i32(changed, "ExecMainCode"),
        get_i32(changed, "ExecMainStatus"),
    ) {
        if ended != 0 && code != 0 {
            t.exec_main = Some((code, status));
            t.run_open = false;
            out.push(BackendEvent::Exited {
                unit: t.service.clone(),
                pid: t.pid,
                status: t.exit_status(),
            });
        }
    }
}

fn get_u64(m: &HashMap<String, OwnedValue>, k: &str) -> Option<u64> {
    match &**m.get(k)? {
        Value::U64(v) => Some(*v),
        _ => None,
    }
}

fn get_u32(m: &HashMap<String, OwnedValue>, k: &str) -> Option<u32> {
    match &**m.get(k)? {
        Value::U32(v) => Some(*v),
        _ => None,
    }
}

fn get_i32(m: &HashMap<String, OwnedValue>, k: &str) -> Option<i32> {
    match &**m.get(k)? {
        Value::I32(v) => Some(*v),
        _ => None,
    }
}

fn get_str(m: &HashMap<String, OwnedValue>, k: &str) -> Option<String> {
    match &**m.get(k)? {
        Value::Str(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn get_job_id(m: &HashMap<String, OwnedValue>) -> Option<u32> {
    match &**m.get("Job")? {
        Value::Structure(s) => match s.fields().first()? {
            Value::U32(id) => Some(*id),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::{ObjectPath, StructureBuilder};

    const PATH: &str = "/org/freedesktop/systemd1/unit/sysg_2dp_2dw_2eservice";

    fn ov(v: Value<'_>) -> OwnedValue {
        v.try_to_owned().unwrap()
    }

    fn job(id: u32) -> OwnedValue {
        let path = if id == 0 {
            "/".to_string()
        } else {
            format!("/org/freedesktop/systemd1/job/{id}")
        };
        let s = StructureBuilder::new()
            .add_field(id)
            .add_field(ObjectPath::try_from(path).unwrap())
            .build()
            .unwrap();
        ov(Value::Structure(s))
    }

    fn unit_props(state: &str, job_id: u32) -> Signal {
        let mut changed = HashMap::new();
        changed.insert("ActiveState".into(), ov(Value::from(state)));
        changed.insert("Job".into(), job(job_id));
        Signal::Props {
            path: PATH.into(),
            iface: "org.freedesktop.systemd1.Unit".into(),
            changed,
        }
    }

    fn service_props(main: u32, exec_main: u32, code: i32, status: i32) -> Signal {
        let mut changed = HashMap::new();
        changed.insert("MainPID".into(), ov(Value::U32(main)));
        changed.insert("ExecMainPID".into(), ov(Value::U32(exec_main)));
        changed.insert("ExecMainCode".into(), ov(Value::I32(code)));
        changed.insert("ExecMainStatus".into(), ov(Value::I32(status)));
        changed.insert("Result".into(), ov(Value::from("exit-code")));
        Signal::Props {
            path: PATH.into(),
            iface: "org.freedesktop.systemd1.Service".into(),
            changed,
        }
    }

    fn tracked() -> State {
        let mut st = State::default();
        let mut t = Track::new("w", "sysg-p-w.service");
        t.start_job = Some("/org/freedesktop/systemd1/job/7".into());
        st.tracks.insert(PATH.into(), t);
        st
    }

    #[test]
    fn full_life_reports_one_exit_with_code() {
        let mut st = tracked();
        assert!(apply(&mut st, unit_props("inactive", 7)).is_empty());
        assert!(apply(&mut st, service_props(42, 42, 0, 0)).is_empty());
        assert!(apply(&mut st, unit_props("active", 0)).is_empty());
        assert!(apply(
            &mut st,
            Signal::JobRemoved {
                job: "/org/freedesktop/systemd1/job/7".into(),
                unit: "sysg-p-w.service".into(),
                result: "done".into()
            }
        )
        .is_empty());
        let t = &st.tracks[PATH];
        assert_eq!(t.start_job_result(), Some("done"));
        assert_eq!(t.main_pid, 42);
        st.tracks.get_mut(PATH).unwrap().armed = true;
        st.tracks.get_mut(PATH).unwrap().pid = 42;
        assert!(apply(&mut st, service_props(0, 42, 1, 3)).is_empty());
        let ev = apply(&mut st, unit_props("failed", 0));
        assert_eq!(
            ev,
            vec![BackendEvent::Exited {
                unit: "w".into(),
                pid: 42,
                status: ExitStatus::Code(3)
            }]
        );
        // The removal that follows does not report again.
        assert!(apply(&mut st, Signal::UnitRemoved { path: PATH.into() }).is_empty());
        assert!(st.tracks[PATH].removed);
    }

    #[test]
    fn killed_and_dumped_are_signals() {
        for code in [2, 3] {
            let mut st = tracked();
            let t = st.tracks.get_mut(PATH).unwrap();
            t.armed = true;
            t.seen_active = true;
            t.pid = 5;
            apply(&mut st, service_props(0, 5, code, 9));
            let ev = apply(&mut st, unit_props("inactive", 0));
            assert_eq!(
                ev,
                vec![BackendEvent::Exited {
                    unit: "w".into(),
                    pid: 5,
                    status: ExitStatus::Signal(9)
                }]
            );
        }
    }

    #[test]
    fn end_before_start_returns_is_kept_for_later() {
        let mut st = tracked();
        apply(&mut st, unit_props("active", 0));
        apply(&mut st, service_props(0, 9, 1, 0));
        assert!(apply(&mut st, unit_props("inactive", 0)).is_empty());
        let t = st.tracks.get_mut(PATH).unwrap();
        assert!(t.ended);
        t.armed = true;
        assert_eq!(
            t.take_exit(),
            Some(BackendEvent::Exited {
                unit: "w".into(),
                pid: 9,
                status: ExitStatus::Code(0)
            })
        );
        assert_eq!(t.take_exit(), None);
    }

    #[test]
    fn inactive_with_pending_job_is_not_an_end() {
        let mut st = tracked();
        st.tracks.get_mut(PATH).unwrap().armed = true;
        assert!(apply(&mut st, unit_props("inactive", 7)).is_empty());
        assert!(!st.tracks[PATH].ended);
    }

    #[test]
    fn stale_removal_before_start_job_is_ignored() {
        let mut st = tracked();
        assert!(apply(&mut st, Signal::UnitRemoved { path: PATH.into() }).is_empty());
        assert!(!st.tracks[PATH].removed);
    }

    #[test]
    fn removal_of_a_started_unit_reports_unknown_when_nothing_was_seen() {
        let mut st = tracked();
        apply(
            &mut st,
            Signal::JobRemoved {
                job: "/org/freedesktop/systemd1/job/7".into(),
                unit: "sysg-p-w.service".into(),
                result: "done".into(),
            },
        );
        let t = st.tracks.get_mut(PATH).unwrap();
        t.armed = true;
        t.pid = 11;
        let ev = apply(&mut st, Signal::UnitRemoved { path: PATH.into() });
        assert_eq!(
            ev,
            vec![BackendEvent::Exited {
                unit: "w".into(),
                pid: 11,
                status: ExitStatus::Unknown
            }]
        );
    }

    #[test]
    fn daemon_reload_removing_a_running_unit_is_no_end() {
        let mut st = tracked();
        apply(&mut st, unit_props("active", 0));
        let t = st.tracks.get_mut(PATH).unwrap();
        t.armed = true;
        t.pid = 11;
        t.jobs_done
            .push(("/org/freedesktop/systemd1/job/7".into(), "done".into()));
        assert!(apply(&mut st, Signal::UnitRemoved { path: PATH.into() }).is_empty());
        assert!(!st.tracks[PATH].ended);
    }

    const SPATH: &str = "/org/freedesktop/systemd1/unit/sysg_2dp_2dj_2eservice";
    const TPATH: &str = "/org/freedesktop/systemd1/unit/sysg_2dp_2dj_2etimer";

    fn timer_state() -> State {
        let mut st = State::default();
        st.tracks.insert(
            SPATH.into(),
            Track::timer_runs("j", "sysg-p-j.service", 1_000),
        );
        st.tracks
            .insert(TPATH.into(), Track::timer("j", "sysg-p-j.timer", 1_000));
        st
    }

    /// A timer service's `Service` properties as systemd sends them (all of them each time).
    fn run_props(started: u64, ended: u64, pid: u32, code: i32, status: i32) -> Signal {
        let mut changed = HashMap::new();
        changed.insert("ExecMainStartTimestamp".into(), ov(Value::U64(started)));
        changed.insert("ExecMainExitTimestamp".into(), ov(Value::U64(ended)));
        changed.insert("ExecMainPID".into(), ov(Value::U32(pid)));
        changed.insert("ExecMainCode".into(), ov(Value::I32(code)));
        changed.insert("ExecMainStatus".into(), ov(Value::I32(status)));
        changed.insert(
            "MainPID".into(),
            ov(Value::U32(if ended == 0 { pid } else { 0 })),
        );
        Signal::Props {
            path: SPATH.into(),
            iface: "org.freedesktop.systemd1.Service".into(),
            changed,
        }
    }

    fn trigger(usec: u64) -> Signal {
        let mut changed = HashMap::new();
        changed.insert("LastTriggerUSec".into(), ov(Value::U64(usec)));
        changed.insert("NextElapseUSecRealtime".into(), ov(Value::U64(u64::MAX)));
        Signal::Props {
            path: TPATH.into(),
            iface: "org.freedesktop.systemd1.Timer".into(),
            changed,
        }
    }

    fn started(pid: u32) -> BackendEvent {
        BackendEvent::Started {
            unit: "j".into(),
            pid,
        }
    }

    fn exited(pid: u32, status: ExitStatus) -> BackendEvent {
        BackendEvent::Exited {
            unit: "j".into(),
            pid,
            status,
        }
    }

    #[test]
    fn timer_runs_are_told_apart_by_their_start_stamp() {
        let mut st = timer_state();
        // The fresh service, never run yet.
        assert!(apply(&mut st, run_props(0, 0, 0, 0, 0)).is_empty());
        assert_eq!(
            apply(&mut st, trigger(2_000)),
            [BackendEvent::Elapsed { unit: "j".into() }]
        );
        // The same trigger again (the timer's state changed, not its trigger): nothing.
        assert!(apply(&mut st, trigger(2_000)).is_empty());
        assert_eq!(apply(&mut st, run_props(2_010, 0, 40, 0, 0)), [started(40)]);
        // Repeated while running: nothing new.
        assert!(apply(&mut st, run_props(2_010, 0, 40, 0, 0)).is_empty());
        assert!(apply(&mut st, unit_props_at(SPATH, "active", 0)).is_empty());
        assert_eq!(
            apply(&mut st, run_props(2_010, 4_000, 40, 1, 3)),
            [exited(40, ExitStatus::Code(3))]
        );
        assert!(apply(&mut st, run_props(2_010, 4_000, 40, 1, 3)).is_empty());
        // A 5 ms run whose start and end arrive in one signal is still a start and an end.
        assert_eq!(
            apply(&mut st, run_props(6_000, 6_005, 41, 1, 0)),
            [started(41), exited(41, ExitStatus::Code(0))]
        );
        // Killed by a signal.
        assert_eq!(
            apply(&mut st, run_props(7_000, 7_500, 42, 2, 9)),
            [started(42), exited(42, ExitStatus::Signal(9))]
        );
    }

    #[test]
    fn an_earlier_instance_of_the_same_names_is_ignored() {
        let mut st = timer_state();
        assert!(apply(&mut st, run_props(500, 600, 30, 1, 0)).is_empty());
        assert!(apply(&mut st, trigger(700)).is_empty());
    }

    #[test]
    fn a_run_live_when_its_unit_is_unloaded_ends_unknown() {
        let mut st = timer_state();
        apply(&mut st, run_props(2_000, 0, 50, 0, 0));
        assert_eq!(
            apply(&mut st, Signal::UnitRemoved { path: SPATH.into() }),
            [exited(50, ExitStatus::Unknown)]
        );
        assert!(apply(&mut st, Signal::UnitRemoved { path: TPATH.into() }).is_empty());
        assert!(st.tracks[TPATH].removed);
    }

    fn unit_props_at(path: &str, state: &str, job_id: u32) -> Signal {
        match unit_props(state, job_id) {
            Signal::Props { iface, changed, .. } => Signal::Props {
                path: path.into(),
                iface,
                changed,
            },
            other => other,
        }
    }
}
