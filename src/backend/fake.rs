//! A backend that runs nothing, for testing the runtime in-process: it records every call,
//! hands out made-up pids, sends the events a test asks for (an exit, a crash), and fails a
//! start or a stop on command. By default a unit ends when it is signalled or killed, as a
//! well-behaved process would; `manual_stops` leaves the exit to the test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{AdoptRecord, Backend, BackendError, BackendEvent, EventSink};
use crate::spec::{ExitStatus, UnitSpec};

/// One call the runtime made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Start(String),
    Signal(String, i32),
    Kill(String),
    Adopt(String),
    Release,
}

struct State {
    calls: Vec<Call>,
    /// Running units and their pids.
    running: BTreeMap<String, u32>,
    next_pid: u32,
    /// Units whose next starts fail, with the error.
    fail_start: HashMap<String, String>,
    /// Units whose stops (signal, kill) fail, leaving them running.
    fail_stop: HashSet<String>,
    /// Whether a signalled or killed unit ends by itself.
    exit_on_stop: bool,
    /// What `adopt` finds still running: unit → pid.
    adoptable: HashMap<String, u32>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled on every call.
    changed: Condvar,
    sink: EventSink,
}

/// The backend half, given to the runtime.
pub struct FakeBackend {
    shared: Arc<Shared>,
}

/// The test's half: what happened, and what happens next.
#[derive(Clone)]
pub struct FakeHandle {
    shared: Arc<Shared>,
}

impl FakeBackend {
    /// A fake that sends its events to `sink`, and the handle that drives it.
    pub fn new(sink: EventSink) -> (FakeBackend, FakeHandle) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                calls: Vec::new(),
                running: BTreeMap::new(),
                next_pid: 40_000,
                fail_start: HashMap::new(),
                fail_stop: HashSet::new(),
                exit_on_stop: true,
                adoptable: HashMap::new(),
            }),
            changed: Condvar::new(),
            sink,
        });
        (
            FakeBackend {
                shared: shared.clone(),
            },
            FakeHandle { shared },
        )
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `call`; wake whoever waits for calls.
    fn record(&self, st: &mut State, call: Call) {
        st.calls.push(call);
        self.changed.notify_all();
    }

    /// A stop (signal or kill) of `unit`: an error when it does not run or is told to fail;
    /// otherwise, unless stops are manual, the unit ends with `status`.
    /// The call is recorded last: a test that saw it knows the exit is already on its way.
    fn stop(&self, unit: &str, call: Call, status: ExitStatus) -> Result<(), BackendError> {
        let mut st = self.lock();
        let result = if st.fail_stop.contains(unit) {
            Err(BackendError::Other(format!("{unit}: refused to stop")))
        } else if let Some(&pid) = st.running.get(unit) {
            if st.exit_on_stop {
                st.running.remove(unit);
                (self.sink)(BackendEvent::Exited {
                    unit: unit.to_string(),
                    pid,
                    status,
                });
            }
            Ok(())
        } else {
            Err(BackendError::NotRunning {
                unit: unit.to_string(),
            })
        };
        self.record(&mut st, call);
        result
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn start(&mut self, spec: &UnitSpec) -> Result<u32, BackendError> {
        let mut st = self.shared.lock();
        self.shared.record(&mut st, Call::Start(spec.name.clone()));
        if let Some(message) = st.fail_start.get(&spec.name) {
            return Err(BackendError::Start {
                unit: spec.name.clone(),
                message: message.clone(),
            });
        }
        st.next_pid += 1;
        let pid = st.next_pid;
        st.running.insert(spec.name.clone(), pid);
        Ok(pid)
    }

    fn signal(&mut self, unit: &str, signal: i32) -> Result<(), BackendError> {
        self.shared.stop(
            unit,
            Call::Signal(unit.to_string(), signal),
            ExitStatus::Signal(signal),
        )
    }

    fn kill(&mut self, unit: &str) -> Result<(), BackendError> {
        self.shared.stop(
            unit,
            Call::Kill(unit.to_string()),
            ExitStatus::Signal(libc::SIGKILL),
        )
    }

    fn adopt(&mut self, record: &AdoptRecord) -> Result<Option<u32>, BackendError> {
        let mut st = self.shared.lock();
        self.shared
            .record(&mut st, Call::Adopt(record.unit.clone()));
        match st.adoptable.get(&record.unit) {
            Some(&pid) if pid == record.pid => {
                st.running.insert(record.unit.clone(), pid);
                Ok(Some(pid))
            }
            _ => Ok(None),
        }
    }

    fn records(&self) -> Vec<AdoptRecord> {
        self.shared
            .lock()
            .running
            .iter()
            .map(|(unit, &pid)| AdoptRecord {
                unit: unit.clone(),
                pid,
                start_time: 0,
                extra: serde_json::Value::Null,
            })
            .collect()
    }

    fn release(&mut self) {
        let mut st = self.shared.lock();
        self.shared.record(&mut st, Call::Release);
    }
}

impl FakeHandle {
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The units started so far, in order.
    pub fn starts(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Start(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// The pid of `unit` while it runs.
    pub fn pid(&self, unit: &str) -> Option<u32> {
        self.shared.lock().running.get(unit).copied()
    }

    /// Wait until the calls satisfy `done`, for at most `timeout`; whether they did.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Call]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if done(&st.calls) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Starts of `unit` fail with `message` from now on.
    pub fn fail_start(&self, unit: &str, message: &str) {
        self.shared
            .lock()
            .fail_start
            .insert(unit.to_string(), message.to_string());
    }

    /// Stops (signals, kills) of `unit` fail from now on, and it keeps running.
    pub fn fail_stop(&self, unit: &str) {
        self.shared.lock().fail_stop.insert(unit.to_string());
    }

    /// Signalled units keep running until the test ends them (`exit`).
    pub fn manual_stops(&self) {
        self.shared.lock().exit_on_stop = false;
    }

    /// The next unit started gets `pid` (then pids count on from there).
    pub fn next_pid(&self, pid: u32) {
        self.shared.lock().next_pid = pid.saturating_sub(1);
    }

    /// `adopt` finds `unit` running as `pid`.
    pub fn adoptable(&self, unit: &str, pid: u32) {
        self.shared.lock().adoptable.insert(unit.to_string(), pid);
    }

    /// End running `unit` with `status`, as its process would; false when it does not run.
    pub fn exit(&self, unit: &str, status: ExitStatus) -> bool {
        let pid = self.shared.lock().running.remove(unit);
        let Some(pid) = pid else {
            return false;
        };
        (self.shared.sink)(BackendEvent::Exited {
            unit: unit.to_string(),
            pid,
            status,
        });
        true
    }
}
