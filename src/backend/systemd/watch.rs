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

pub use super::track::{Track, TrackKind};

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
        // Most property changes are of units not tracked here (a project's helper units come
        // and go hundreds of times a second under fast probes): skip them before decoding
        // their bodies; `apply` would ignore them anyway.
        if is_untracked_change(&msg, &shared) {
            continue;
        }
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

/// A `PropertiesChanged` of an object no track follows.
fn is_untracked_change(msg: &zbus::Message, shared: &Shared) -> bool {
    let header = msg.header();
    match (header.member(), header.path()) {
        (Some(m), Some(p)) if m.as_str() == "PropertiesChanged" => {
            !shared.lock().tracks.contains_key(p.as_str())
        }
        _ => false,
    }
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
mod tests;
