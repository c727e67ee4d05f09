//! The supervisor's event loop: one thread owns the core (`core::Supervision`) and the
//! backend; the backend's watcher threads, the control socket and the signal thread feed it
//! through one channel. Timers are the loop's `recv_timeout` deadline. Nothing polls.
//!
//! The loop is a message pump: each message becomes an `Input` of the core (backend events
//! whatever their key, client requests, the end of a turn), and the core's `Action`s are
//! carried out here (the backend, probes, hooks, deployment commands, answers to clients).
//! Which state machine an event belongs to, what a client waits for and when it is answered
//! are the core's decisions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Instant;

use super::observe::Observer;
use super::paths::ProjectPaths;
use super::plan::jobs;
use super::sd_notify::SdNotify;
use super::state::{self, UnitMemo};
use crate::backend::{Backend, BackendEvent};
use crate::config::Config;
use crate::control::protocol::Response;
use crate::control::server::Incoming;
use crate::core::{ClientEvent, ClientId, Core, Event, Goal, Input, Supervision, UnitId};

/// Carrying out the core's actions.
mod actions;
/// `sysg run`: ad-hoc units added to the running plan.
mod adhoc;
/// Re-adopting what an earlier supervisor left running.
mod adopt;
/// Client requests and the answers they get.
mod clients;
/// `Request::Logs` on the systemd backend.
mod logs;
/// Reloads: the config is read off the loop.
mod reload;
/// `sysg reload` (a service's `reload:`) and `sysg kill`.
mod service_cmds;
/// Everything before the loop runs.
mod setup;
/// `sysg spawn`: callers, specs, children through the backend.
mod spawning;
/// What the supervisor reports and persists: status, state.json, inspect.
mod state_report;
#[cfg(test)]
mod tests;

pub use setup::run;

/// How to run the supervisor.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_path: PathBuf,
    pub system: bool,
    /// Start only these at first (with their dependencies); all when `None`.
    pub services: Option<Vec<String>>,
    /// Echo service output to stdout as `name | line` (foreground mode).
    pub echo: bool,
    /// Where to report readiness (daemon mode): one JSON `Response` line.
    pub ready_fd: Option<i32>,
    /// Adopt running units but start nothing (used to stop what a crashed supervisor left).
    pub adopt_only: bool,
    /// `--backend`.
    pub backend: crate::backend::Choice,
    /// `--drop-privileges`: set up as root, then run as the services' user (privileges.rs).
    pub drop_privileges: bool,
    /// Run the `adhoc` project's supervisor: no config file, an empty plan (`sysg run`).
    pub adhoc: bool,
}

enum Msg {
    Backend(BackendEvent),
    Control(Incoming),
    Signal(i32),
    Probe(crate::health::ProbeOutcome),
    Deploy(crate::core::DeployEvent),
    /// A reload's config, loaded off the loop.
    Reloaded(Box<reload::Loaded>),
    /// A service's reload command ended (`sysg reload`, service_cmds.rs).
    ReloadDone(service_cmds::CommandDone),
}

/// The client of the readiness pipe of `sysg start --daemonize` (others count from 1).
const READY: ClientId = 0;

/// The running supervisor.
struct Supervisor {
    config: Config,
    paths: ProjectPaths,
    /// Every decision: the units, the spawned children, the waiting clients.
    engine: Supervision,
    backend: Box<dyn Backend>,
    rx: Receiver<Msg>,
    queue: VecDeque<Input>,
    /// Where the answers of parked clients go (`Action::Reply`).
    clients: HashMap<ClientId, Sender<Response>>,
    next_client: ClientId,
    /// The readiness pipe of a daemonized start, until it has its answer (client `READY`).
    ready: Option<File>,
    memo: BTreeMap<String, UnitMemo>,
    /// Restarts of each service in the run this supervisor continues: a crashed supervisor's,
    /// when it re-adopted some of its services; nothing after a fresh start. Counters belong
    /// to the run that made them (the exit history in `inspect` outlives runs).
    carried: BTreeMap<String, u32>,
    /// When to write state.json (once per loop turn).
    dirty: state::Persist,
    shutdown_replies: Vec<(Sender<Response>, Receiver<()>)>,
    /// Runs health probes off this thread; results come back as `Msg::Probe`.
    probes: crate::health::Runner,
    /// Hooks and webhooks.
    notifier: crate::notify::Notifier,
    /// sd_notify to systemd when the supervisor is itself a `Type=notify` service.
    sd_notify: SdNotify,
    /// Deployment commands (`pre_start`, `switch_command`) and slot files.
    deploys: super::deploy::Runner,
    /// Exit history and CPU/memory samples for `inspect`.
    obs: Observer,
    /// SYSG_SOCKET of the services: the control socket, or the services' socket.
    service_socket: PathBuf,
    /// Where reload workers send the config they loaded.
    reload_tx: Sender<Msg>,
    /// Reloads asked for, and the latest one applied (an older result is dropped).
    reloads_asked: u64,
    reloads_applied: u64,
    /// `--sys`: the system manager's journal, else the user's (logs.rs).
    system: bool,
}

impl Supervisor {
    /// A supervisor of `config` running its units on `backend`, fed through `channel` (whose
    /// sender the backend's sink, probes and deployment commands also use). Nothing starts
    /// until a `Request::Start` is queued and the loop runs.
    fn new(
        config: Config,
        paths: ProjectPaths,
        backend: Box<dyn Backend>,
        channel: (Sender<Msg>, Receiver<Msg>),
        system: bool,
        sd_notify: SdNotify,
    ) -> Supervisor {
        let (tx, rx) = channel;
        let probe_tx = tx.clone();
        let probes = crate::health::Runner::new(std::sync::Arc::new(move |o| {
            let _ = probe_tx.send(Msg::Probe(o));
        }));
        let deploy_tx = tx.clone();
        let deploys = super::deploy::Runner::new(std::sync::Arc::new(move |e| {
            let _ = deploy_tx.send(Msg::Deploy(e));
        }));
        // Services find their supervisor through SYSG_SOCKET. Under --sys the control socket
        // is root's (and the systemg group's): services with dynamic spawning, which may run
        // as any user, get a socket of their own that takes nothing but `spawn`.
        let service_socket = if system && setup::has_dynamic_spawning(&config) {
            paths.spawn_socket.clone()
        } else {
            paths.socket.clone()
        };
        let (units, deployments) =
            super::deploy::full_plan(&config, &paths.state_dir, &service_socket);
        let mut core = Core::with_jobs(units, jobs(&config, backend.supports_timers()));
        core.set_deployments(deployments);
        let mut sup = Supervisor {
            engine: Supervision::new(core),
            config,
            paths,
            backend,
            rx,
            queue: VecDeque::new(),
            clients: HashMap::new(),
            next_client: READY + 1,
            ready: None,
            memo: BTreeMap::new(),
            carried: BTreeMap::new(),
            dirty: state::Persist::new(Instant::now()),
            shutdown_replies: Vec::new(),
            probes,
            notifier: crate::notify::Notifier::new(),
            sd_notify,
            deploys,
            obs: Observer::from_env(),
            service_socket,
            reload_tx: tx,
            reloads_asked: 0,
            reloads_applied: 0,
            system,
        };
        sup.configure_spawning();
        sup.obs.sampler.arm(Instant::now());
        sup
    }

    /// Answer the readiness pipe `ready` once `services` (all when `None`) settled.
    fn await_ready(&mut self, ready: File, services: Option<Vec<UnitId>>) {
        self.ready = Some(ready);
        self.queue
            .push_back(Input::Client(ClientEvent::AwaitSettled {
                client: READY,
                services,
            }));
    }

    /// Park a client until the core answers it.
    fn park(&mut self, reply: Sender<Response>) -> ClientId {
        let client = self.next_client;
        self.next_client += 1;
        self.clients.insert(client, reply);
        client
    }

    fn run_loop(&mut self) -> i32 {
        loop {
            self.drain_queue();
            // Work already due (a restart with zero backoff) goes before the state write, so
            // that its fsync never delays a restart.
            if self
                .engine
                .next_deadline()
                .is_some_and(|d| d <= Instant::now())
            {
                self.queue.push_back(Input::Unit(Event::Tick));
                continue;
            }
            // Events already waiting (a burst of exits while 1,000 services stop) belong to
            // this turn: one state write and one look at the waiting clients for all of them.
            let waiting = if self.dirty.may_batch(Instant::now()) {
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return 1,
                }
            } else {
                None
            };
            if waiting.is_none() {
                // The turn ends: the state is written before any client hears of the change.
                if self.dirty.end_turn() {
                    self.persist();
                }
                self.report_progress();
                self.check_waiters();
                if self.engine.done() {
                    return 0;
                }
            }
            // The sampler only has a deadline while someone inspects a unit.
            let deadline = [
                self.engine.next_deadline(),
                self.obs.sampler.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let msg = match (waiting, deadline) {
                (Some(m), _) => m,
                (None, Some(deadline)) => {
                    let now = Instant::now();
                    if deadline <= now {
                        self.on_deadline(now);
                        continue;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            self.on_deadline(Instant::now());
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return 1,
                    }
                }
                (None, None) => {
                    // Nothing is due: the supervisor sleeps until the next event. A burst of
                    // work (starting 1,000 units, a status report of them) peaks at megabytes
                    // that malloc would otherwise keep for the supervisor's whole life.
                    setup::release_freed_memory();
                    match self.rx.recv() {
                        Ok(m) => m,
                        Err(_) => return 1,
                    }
                }
            };
            match msg {
                Msg::Backend(ev) => {
                    let event = actions::event_of(ev);
                    self.queue.push_back(Input::Unit(event));
                }
                Msg::Probe(o) => {
                    self.obs.record_probe(&o.unit, o.ok, &o.detail);
                    self.queue.push_back(Input::Unit(Event::ProbeResult {
                        unit: o.unit,
                        probe: o.probe,
                        ok: o.ok,
                        detail: o.detail,
                    }));
                }
                Msg::Deploy(e) => self.queue.push_back(Input::Unit(Event::Deploy(e))),
                Msg::Control(inc) => self.on_request(inc),
                Msg::Signal(sig) if sig == libc::SIGHUP => {
                    let path = self.config.path.clone();
                    self.reload(path, None);
                }
                Msg::Reloaded(loaded) => self.reloaded(*loaded),
                Msg::ReloadDone(done) => self.reload_command_done(done),
                Msg::Signal(sig) => {
                    tracing::info!(
                        "received {}, stopping every service",
                        crate::signals::name(sig)
                    );
                    self.begin_shutdown();
                }
            }
        }
    }

    /// While a daemonized start waits, tell it what changed (before the final report).
    fn report_progress(&mut self) {
        if self.ready.is_none() {
            return;
        }
        let report = self.status();
        let changes = self.obs.progress.changes(&report);
        if let Some(f) = &mut self.ready {
            for p in changes {
                let line = super::observe::ProgressLine { progress: p };
                if let Ok(mut text) = serde_json::to_string(&line) {
                    text.push('\n');
                    let _ = f.write_all(text.as_bytes());
                }
            }
        }
    }

    /// A deadline passed: the core's timers, the sampler, or both.
    fn on_deadline(&mut self, now: Instant) {
        if self.obs.sampler.due(now) {
            let records = self.backend.records();
            self.obs.sample(now, &records);
        }
        if self.engine.next_deadline().is_some_and(|d| d <= now) {
            self.queue.push_back(Input::Unit(Event::Tick));
        }
    }

    fn drain_queue(&mut self) {
        while let Some(input) = self.queue.pop_front() {
            // Cron schedules are wall-clock: the core gets both clocks, it reads neither.
            let actions = self
                .engine
                .handle(Instant::now(), chrono::Utc::now(), input);
            self.execute_all(actions);
        }
    }

    /// The end of a turn: readiness for systemd, then the core answers the clients whose goal
    /// is met and forgets the ad-hoc units that are down.
    fn check_waiters(&mut self) {
        if self.sd_notify.active() {
            match self.sd_notify.awaiting_ready() {
                Some(sel) => {
                    if self.engine.met(&Goal::Settled(sel)) {
                        self.sd_notify.ready(&self.status());
                    }
                }
                None => self.sd_notify.status(&self.status()),
            }
        }
        // The answers are rendered as they are executed, before the core forgets anything.
        self.queue.push_back(Input::Client(ClientEvent::TurnEnded));
        self.queue.push_back(Input::Client(ClientEvent::Answered));
        self.drain_queue();
    }

    fn finish(&mut self) {
        if self.engine.core().idle() {
            self.backend.release();
        }
        self.persist();
        let _ = std::fs::remove_file(&self.paths.socket);
        let _ = std::fs::remove_file(&self.paths.spawn_socket);
        let _ = std::fs::remove_file(&self.paths.pid_file);
        let report = to_json(&self.status());
        for (r, written) in self.shutdown_replies.drain(..) {
            if r.send(Response::ok(report.clone())).is_ok() {
                // The process exits right after this; let the answer reach the client first.
                let _ = written.recv_timeout(std::time::Duration::from_secs(2));
            }
        }
        // Clients still waiting (the readiness pipe among them) get an error.
        let _ = self.engine.take_clients();
        for (_, tx) in self.clients.drain() {
            let _ = tx.send(Response::err("the supervisor stopped", report.clone()));
        }
        if self.ready.is_some() {
            setup::report_ready(
                &mut self.ready,
                Response::err("the supervisor stopped during start-up", report),
            );
        }
        tracing::info!("supervisor stopped");
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
