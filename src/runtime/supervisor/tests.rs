//! The runtime in-process: a `Supervisor` on a `FakeBackend`, driven through its channel like
//! the control socket and the backend's watchers drive it. What the fake saw (starts, signals,
//! adoptions) and what the clients were told are the evidence.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Msg, Supervisor};
use crate::backend::fake::{Call, FakeBackend, FakeHandle};
use crate::backend::AdoptRecord;
use crate::config;
use crate::control::access::Peer;
use crate::control::protocol::{Request as Wire, Response, SpawnRequest};
use crate::control::server::Incoming;
use crate::core::{Event, Input, Request};
use crate::runtime::paths::Roots;
use crate::runtime::sd_notify::SdNotify;
use crate::runtime::state::{self, PersistedState, STATE_VERSION};
use crate::spec::ExitStatus;

/// How long any answer may take (the settle window is 200 ms).
const ANSWER: Duration = Duration::from_secs(10);

struct Harness {
    tx: Sender<Msg>,
    fake: FakeHandle,
    config: PathBuf,
    thread: Option<JoinHandle<i32>>,
    _dir: tempfile::TempDir,
}

/// Before the supervisor runs: the fake (what it can adopt) and the state file's path.
type Prepare = Box<dyn FnOnce(&FakeHandle, &Path)>;

impl Harness {
    /// A supervisor of `yaml` on a fake backend, which re-adopts what the state file (written
    /// by `prepare`) records and then starts every service, as `sysg start` does.
    fn start(yaml: &str, prepare: Prepare) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("systemg.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let config = config::load(&config_path).unwrap();
        let roots = Roots {
            state: dir.path().join("state"),
            run: dir.path().join("run"),
            log: dir.path().join("log"),
            system: false,
        };
        let paths = roots.project(&config.project);
        for d in [&paths.state_dir, &paths.run_dir, &paths.log_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (tx, rx) = mpsc::channel::<Msg>();
        let sink_tx = tx.clone();
        let (backend, fake) = FakeBackend::new(Box::new(move |ev| {
            let _ = sink_tx.send(Msg::Backend(ev));
        }));
        prepare(&fake, &paths.state_file);
        let sup_tx = tx.clone();
        let thread = std::thread::spawn(move || {
            let mut sup = Supervisor::new(
                config,
                paths,
                Box::new(backend),
                (sup_tx, rx),
                false,
                SdNotify::from_env(None),
            );
            sup.adopt_previous().unwrap();
            sup.queue
                .push_back(Input::Unit(Event::Request(Request::Start(None))));
            let code = sup.run_loop();
            sup.finish();
            code
        });
        Harness {
            tx,
            fake,
            config: config_path,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Send `request` as a client would; the answer comes on the receiver.
    fn send(&self, request: Wire) -> Receiver<Response> {
        let (reply, answer) = mpsc::channel();
        let (_written_tx, written) = mpsc::channel();
        let inc = Incoming {
            // The test process, as the control socket would see it.
            peer: Peer {
                pid: std::process::id() as i32,
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
            },
            request,
            reply,
            written,
        };
        self.tx.send(Msg::Control(inc)).unwrap();
        answer
    }

    fn ask(&self, request: Wire) -> Response {
        self.send(request)
            .recv_timeout(ANSWER)
            .expect("the supervisor answers")
    }

    /// The status entry of `service`.
    fn service(&self, service: &str) -> serde_json::Value {
        let r = self.ask(Wire::Status);
        assert!(r.ok, "{r:?}");
        r.data["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == service)
            .cloned()
            .unwrap_or_else(|| panic!("no {service} in {:?}", r.data))
    }

    /// Stop everything and wait for the supervisor to end; its exit code.
    fn shutdown(mut self) -> i32 {
        let r = self.ask(Wire::Shutdown);
        assert!(r.ok, "{r:?}");
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A failed test asks its supervisor to stop, but does not wait for it: a unit the
        // fake keeps running (manual stops) would keep the thread up.
        if self.thread.take().is_some() {
            let _ = self.tx.send(Msg::Signal(libc::SIGTERM));
        }
    }
}

fn no_state() -> Prepare {
    Box::new(|_, _| {})
}

fn signalled(calls: &[Call], unit: &str) -> bool {
    calls
        .iter()
        .any(|c| matches!(c, Call::Signal(u, _) | Call::Kill(u) if u == unit))
}

fn starts_of(calls: &[Call], unit: &str) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Start(u) if u == unit))
        .count()
}

#[test]
fn a_dependent_adopted_before_its_dependency_is_not_restarted() {
    let yaml = "version: \"1\"\nproject: adopt-order\nservices:\n  a-web:\n    command: \"sleep 100\"\n    depends_on: [z-db]\n  z-db:\n    command: \"sleep 100\"\n";
    let h = Harness::start(
        yaml,
        Box::new(|fake, state_file| {
            // The dependent comes first in the records, as name order puts it.
            let records = [("a-web", 4101), ("z-db", 4102)]
                .into_iter()
                .map(|(unit, pid)| {
                    fake.adoptable(unit, pid);
                    AdoptRecord {
                        unit: unit.to_string(),
                        pid,
                        start_time: 0,
                        extra: serde_json::Value::Null,
                    }
                })
                .collect();
            let st = PersistedState {
                version: STATE_VERSION,
                project: "adopt-order".into(),
                config: PathBuf::from("systemg.yaml"),
                backend: "fake".into(),
                supervisor_pid: None,
                records,
                units: Default::default(),
                cron: Default::default(),
                exits: Default::default(),
                timers: Vec::new(),
                spawned: Vec::new(),
            };
            state::save(state_file, &st).unwrap();
        }),
    );
    // `sysg start` after the adoption: both already run, so it is answered at once.
    let r = h.ask(Wire::Start { services: None });
    assert!(r.ok, "{r:?}");
    for (unit, pid) in [("a-web", 4101), ("z-db", 4102)] {
        let s = h.service(unit);
        assert_eq!(s["state"], "running", "{s}");
        assert_eq!(s["pid"], pid, "{s}");
        assert_eq!(s["adopted"], true, "{s}");
    }
    let calls = h.fake.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, Call::Adopt(_)))
            .cloned()
            .collect::<Vec<_>>(),
        vec![Call::Adopt("a-web".into()), Call::Adopt("z-db".into())],
        "the dependent was adopted first"
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Start(_) | Call::Signal(..) | Call::Kill(_))),
        "nothing was stopped or restarted: {calls:?}"
    );
    assert_eq!(h.shutdown(), 0);
}

#[test]
fn a_stop_is_answered_when_the_unit_is_down_not_before() {
    let yaml = "version: \"1\"\nproject: waits\nservices:\n  a:\n    command: \"sleep 100\"\n";
    let h = Harness::start(yaml, no_state());
    let r = h.ask(Wire::Start { services: None });
    assert!(r.ok, "{r:?}");
    assert_eq!(h.service("a")["state"], "running");
    h.fake.manual_stops();
    let stop = h.send(Wire::Stop {
        services: Some(vec!["a".into()]),
    });
    assert!(h.fake.wait_for(ANSWER, |calls| signalled(calls, "a")));
    // Requests are handled in order: the status answer comes after the stop was handled, and
    // the stop itself is not answered while `a` runs.
    assert_eq!(h.service("a")["state"], "stopping");
    assert!(stop.try_recv().is_err(), "answered before `a` was down");
    assert!(h.fake.exit("a", ExitStatus::Signal(libc::SIGTERM)));
    let r = stop.recv_timeout(ANSWER).expect("the stop is answered");
    assert!(r.ok, "{r:?}");
    assert_eq!(h.service("a")["state"], "stopped");
    assert_eq!(h.shutdown(), 0);
}

#[test]
fn a_failed_start_is_the_answer_of_the_start() {
    let yaml = "version: \"1\"\nproject: failing\nservices:\n  a:\n    command: \"sleep 100\"\n    restart_policy: never\n  b:\n    command: \"sleep 100\"\n";
    let h = Harness::start(yaml, no_state());
    assert!(h.ask(Wire::Start { services: None }).ok);
    let r = h.ask(Wire::Stop {
        services: Some(vec!["a".into()]),
    });
    assert!(r.ok, "{r:?}");
    h.fake.fail_start("a", "no such program");
    let r = h.ask(Wire::Start {
        services: Some(vec!["a".into()]),
    });
    assert!(!r.ok, "{r:?}");
    let msg = r.error.unwrap_or_default();
    assert!(msg.contains("no such program"), "{msg}");
    assert_eq!(h.service("a")["state"], "failed");
    assert_eq!(h.service("b")["state"], "running");
    assert_eq!(h.shutdown(), 0);
}

#[test]
fn a_reload_restarts_changed_stops_removed_and_starts_added_services() {
    let v1 = "version: \"1\"\nproject: reload-diff\nservices:\n  a:\n    command: \"sleep 100\"\n  b:\n    command: \"sleep 100\"\n  c:\n    command: \"sleep 100\"\n";
    let v2 = "version: \"1\"\nproject: reload-diff\nservices:\n  a:\n    command: \"sleep 200\"\n  b:\n    command: \"sleep 100\"\n  d:\n    command: \"sleep 100\"\n";
    let h = Harness::start(v1, no_state());
    assert!(h.ask(Wire::Start { services: None }).ok);
    let before = h.fake.calls().len();
    std::fs::write(&h.config, v2).unwrap();
    let r = h.ask(Wire::Reload {
        config: h.config.clone(),
    });
    assert!(r.ok, "{r:?}");
    let changes = &r.data["changes"];
    assert_eq!(changes["added"], serde_json::json!(["d"]), "{changes}");
    assert_eq!(changes["removed"], serde_json::json!(["c"]), "{changes}");
    let calls = h.fake.calls()[before..].to_vec();
    assert!(signalled(&calls, "a"), "changed: stopped {calls:?}");
    assert_eq!(
        starts_of(&calls, "a"),
        1,
        "changed: started again {calls:?}"
    );
    assert!(!signalled(&calls, "b"), "unchanged: untouched {calls:?}");
    assert_eq!(starts_of(&calls, "b"), 0, "unchanged: untouched {calls:?}");
    assert!(signalled(&calls, "c"), "removed: stopped {calls:?}");
    assert_eq!(starts_of(&calls, "c"), 0, "removed: not started {calls:?}");
    assert_eq!(starts_of(&calls, "d"), 1, "added: started {calls:?}");
    let r = h.ask(Wire::Status);
    let names: Vec<&str> = r.data["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["a", "b", "d"]);
    assert_eq!(h.shutdown(), 0);
}

#[test]
fn a_rolling_deployment_whose_candidate_cannot_start_fails_and_keeps_the_old() {
    let yaml = "version: \"1\"\nproject: deploy-fail\nservices:\n  web:\n    command: \"sleep 100\"\n    deployment:\n      strategy: rolling\n      grace_period: 100ms\n";
    let h = Harness::start(yaml, no_state());
    assert!(h.ask(Wire::Start { services: None }).ok);
    let old = h.fake.pid("web").expect("web runs");
    let before = h.fake.calls().len();
    // Every start fails from now on: the candidate's (whatever its key) included.
    for key in ["web", "web~1", "web~2"] {
        h.fake.fail_start(key, "the disk is full");
    }
    let r = h.ask(Wire::Restart {
        services: Some(vec!["web".into()]),
    });
    assert!(!r.ok, "a failed deployment fails the restart: {r:?}");
    let msg = r.error.unwrap_or_default();
    assert!(msg.contains("the disk is full"), "{msg}");
    let calls = h.fake.calls()[before..].to_vec();
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Start(u) if u.starts_with("web~"))),
        "a candidate was started beside the old: {calls:?}"
    );
    assert!(
        !signalled(&calls, "web"),
        "the old was left alone: {calls:?}"
    );
    assert_eq!(h.fake.pid("web"), Some(old));
    let s = h.service("web");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["pid"], old, "{s}");
    assert_eq!(h.shutdown(), 0);
}

#[test]
fn a_stop_the_backend_refuses_leaves_the_unit_up_and_the_client_waiting() {
    let yaml = "version: \"1\"\nproject: stuck\nservices:\n  a:\n    command: \"sleep 100\"\n    stop_timeout: 100ms\n";
    let h = Harness::start(yaml, no_state());
    assert!(h.ask(Wire::Start { services: None }).ok);
    h.fake.fail_stop("a");
    let stop = h.send(Wire::Stop { services: None });
    // The stop signal fails, then the kill after `stop_timeout` fails too.
    assert!(h
        .fake
        .wait_for(ANSWER, |calls| calls.contains(&Call::Kill("a".into()))));
    assert_eq!(h.service("a")["state"], "stopping");
    assert!(stop.try_recv().is_err(), "answered while `a` runs");
    // The process ends after all: the stop is answered.
    assert!(h.fake.exit("a", ExitStatus::Signal(libc::SIGKILL)));
    let r = stop.recv_timeout(ANSWER).expect("the stop is answered");
    assert!(r.ok, "{r:?}");
    assert_eq!(h.shutdown(), 0);
}

/// The names of `service`'s spawned children in its status.
fn children(h: &Harness, service: &str) -> Vec<String> {
    // Left out of the report when there are none.
    let report = h.service(service);
    let Some(list) = report["children"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_childs_exit_reaches_its_tree_and_its_services_end_stops_the_rest() {
    let yaml = "version: \"1\"\nproject: spawning\nservices:\n  web:\n    command: \"sleep 100\"\n    restart_policy: never\n    spawn:\n      mode: dynamic\n";
    // The service's "process" is this test process: a spawn request from it is the
    // service's (the caller is found by its pid).
    let h = Harness::start(yaml, Box::new(|fake, _| fake.next_pid(std::process::id())));
    assert!(h.ask(Wire::Start { services: None }).ok);
    assert_eq!(h.service("web")["pid"], std::process::id());
    for name in ["w1", "w2"] {
        let r = h.ask(Wire::Spawn(SpawnRequest {
            name: name.into(),
            command: vec!["sleep".into(), "100".into()],
            env: Vec::new(),
            cwd: None,
            ttl_secs: None,
            log_level: None,
        }));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.data["unit"], format!("web/{name}"));
    }
    assert_eq!(children(&h, "web"), vec!["w1", "w2"]);
    // A child's exit is the tree's: the service runs on, nothing restarts.
    assert!(h.fake.exit("web/w1", ExitStatus::Code(0)));
    assert_eq!(children(&h, "web"), vec!["w2"]);
    let web = h.service("web");
    assert_eq!(web["state"], "running", "{web}");
    assert_eq!(web["restarts"], 0, "{web}");
    // The service's end cascades to its remaining child.
    assert!(h.fake.exit("web", ExitStatus::Code(1)));
    assert!(h.fake.wait_for(ANSWER, |calls| signalled(calls, "web/w2")));
    assert_eq!(h.service("web")["state"], "failed");
    assert!(children(&h, "web").is_empty());
    assert_eq!(h.fake.starts(), vec!["web", "web/w1", "web/w2"]);
    assert_eq!(h.shutdown(), 0);
}
