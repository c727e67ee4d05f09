//! The supervisor's decisions above the unit state machine, behind one entry:
//! `Supervision::handle(now, wall, input) -> actions`.
//!
//! The runtime's loop feeds it everything that happens (`Input`): what happened to a unit or
//! a spawned child (backend events by key, timers, adoption), what happened to a child the
//! runtime was asked to start, and what clients ask for. It answers with `Action`s, among
//! them `Action::Child` (a spawned child to signal) and `Action::Reply` (a waiting client's
//! answer). It decides:
//!
//! - where an event goes: a key of the shape `<service>/<child>` (`spawn::split_key`) is a
//!   spawned child's, owned by the `SpawnTree`; any other key is a unit's, owned by `Core`. The
//!   end of a service's main process also applies the termination policy of its children;
//! - which requests are refused (unknown services, children that do not run) and what each
//!   client waits for (`Goal`), answered at the end of the loop's turn (`ClientEvent::TurnEnded`,
//!   after the state was written) once the goal is met (`waits.rs`);
//! - which ad-hoc units (`sysg run`) are forgotten once they are down, and that they survive
//!   a reload of the config;
//! - shutdown: every child and unit stops, and `done` says when the supervisor may leave.
//!
//! Like the rest of the core it reads no clock and does no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::spawn::{split_key, ChildKey, SpawnAction, SpawnTree};
use super::waits::{Goal, Waiter};
use super::{Action, Core, DeployPlan, Event, JobPlan, Request, UnitId, UnitPlan};

/// Who waits for an answer: a number the runtime gives each client it parks.
pub type ClientId = u64;

/// One input of `Supervision::handle`.
#[derive(Debug, Clone)]
pub enum Input {
    /// Something that happened to a backend key, or time passed (`Event::Tick`). Backend
    /// events come here whatever their key: a spawned child's (`<service>/<child>`) goes to the
    /// spawn tree, any other to the unit state machine.
    Unit(Event),
    /// The outcome of a child's start, which the runtime carried out after the spawn tree
    /// admitted it (`SpawnTree::admit`).
    Child(ChildEvent),
    /// A client's request, or the end of the loop's turn.
    Client(ClientEvent),
}

impl From<Event> for Input {
    fn from(e: Event) -> Input {
        Input::Unit(e)
    }
}

impl From<ClientEvent> for Input {
    fn from(e: ClientEvent) -> Input {
        Input::Client(e)
    }
}

/// What happened to an admitted child's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// The backend started it as `pid`.
    Started { key: ChildKey, pid: u32 },
    /// The backend could not start it.
    StartFailed { key: ChildKey },
}

/// A client's request, already parsed; the answer comes as `Action::Reply` to `client`.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Start these services (all when `None`); answered once they settled.
    Start {
        client: ClientId,
        services: Option<Vec<UnitId>>,
    },
    /// Restart these services (all when `None`); answered once they settled and their
    /// deployments ended (an error when one failed).
    Restart {
        client: ClientId,
        services: Option<Vec<UnitId>>,
    },
    /// Stop these services (all when `None`, children included), or these spawned children
    /// (`<service>/<child>` keys); answered once they are down.
    Stop {
        client: ClientId,
        services: Option<Vec<UnitId>>,
    },
    /// Add the ad-hoc unit `plan` (`sysg run`); answered once it settled, or once it finished
    /// with `wait` (then it is forgotten).
    Run {
        client: ClientId,
        plan: UnitPlan,
        wait: bool,
    },
    /// Apply a reloaded config: its units (ad-hoc units are kept), cron jobs and deployment
    /// plans. A client (none for SIGHUP) is answered once everything settled, with `changes`.
    Reload {
        client: Option<ClientId>,
        units: Vec<UnitPlan>,
        jobs: Vec<JobPlan>,
        deployments: HashMap<UnitId, Arc<DeployPlan>>,
        changes: Option<serde_json::Value>,
    },
    /// Answer `client` once these services (all when `None`) settled, asking for nothing: the
    /// readiness pipe of `sysg start --daemonize`, whose start is a `Request::Start`.
    AwaitSettled {
        client: ClientId,
        services: Option<Vec<UnitId>>,
    },
    /// `sysg reload` of services, carried out by the runtime: `signalled` got their reload
    /// signal (a notify one is waited for: `RELOADING=1` … `READY=1` within its
    /// `start_timeout`), `commands` run their reload command (each ends with
    /// `ReloadCommandDone`). `services` (what was done) and `problems` (what failed already) go
    /// into the answer, given once every wait is over.
    ReloadServices {
        client: ClientId,
        signalled: Vec<UnitId>,
        commands: Vec<UnitId>,
        services: serde_json::Value,
        problems: Vec<String>,
    },
    /// A reload command of `client`'s `sysg reload` ended; `error` says how it failed.
    ReloadCommandDone {
        client: ClientId,
        service: UnitId,
        error: Option<String>,
    },
    /// Stop every child and every unit; `Supervision::done` says when all are down.
    Shutdown,
    /// The loop's turn ended (the state is written): answer the clients whose goal is met.
    TurnEnded,
    /// The answers of the turn went out (rendered with the units' reports): forget the ad-hoc
    /// units marked for it that are down. Their last report had to go out first.
    Answered,
}

/// What a client is told (the runtime adds the status report it renders).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An error with this message and no report.
    Refused(String),
    /// The project's status report; an error listing `problems`, one a line, when there are
    /// any. `changes` (a reload's) goes into the report as `changes`.
    Report {
        problems: Vec<String>,
        changes: Option<serde_json::Value>,
    },
    /// The report of ad-hoc unit `unit` (`sysg run`); an error saying `problem` when set.
    Run {
        unit: UnitId,
        problem: Option<String>,
    },
    /// What a `sysg reload` did to each service (`services`); an error listing `problems`,
    /// one a line, when any reload failed.
    Reloaded {
        services: serde_json::Value,
        problems: Vec<String>,
    },
}

/// The core of one supervisor: the unit state machine, the spawn trees, the waiting clients
/// and the ad-hoc units.
pub struct Supervision {
    pub(super) core: Core,
    pub(super) spawn: SpawnTree,
    /// Clients waiting for a goal, in the order they came.
    pub(super) waiters: Vec<Waiter>,
    /// Plans of the ad-hoc units (`sysg run`), kept across config reloads.
    pub(super) adhoc: BTreeMap<UnitId, UnitPlan>,
    /// Ad-hoc units to forget once they are down (stopped by name, or waited for).
    pub(super) forget: Vec<UnitId>,
    shutting_down: bool,
}

impl Supervision {
    /// Supervision of `core`'s plan, with no child, no client and no ad-hoc unit yet.
    pub fn new(core: Core) -> Supervision {
        Supervision {
            core,
            spawn: SpawnTree::new(),
            waiters: Vec::new(),
            adhoc: BTreeMap::new(),
            forget: Vec::new(),
            shutting_down: false,
        }
    }

    /// The unit state machine, to read.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The unit state machine, for set-up (deployment plans, restored cron history).
    pub fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// The spawn trees, to read.
    pub fn spawn(&self) -> &SpawnTree {
        &self.spawn
    }

    /// The spawn trees, for set-up and admission (`configure`, `admit`, `adopt`).
    pub fn spawn_mut(&mut self) -> &mut SpawnTree {
        &mut self.spawn
    }

    /// A shutdown began.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// A shutdown began and nothing is left running: the supervisor may leave.
    pub fn done(&self) -> bool {
        self.shutting_down && self.core.idle() && !self.spawn.any_alive(None)
    }

    /// When the next `Event::Tick` is due (units' or children's timers).
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.core.next_deadline(), self.spawn.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The clients still waiting, removed (the supervisor is leaving: each gets an error).
    pub fn take_clients(&mut self) -> Vec<ClientId> {
        self.waiters.drain(..).map(|w| w.client).collect()
    }

    /// Feed one input at monotonic time `now` and wall-clock time `wall`; returns what to do,
    /// in order.
    pub fn handle(&mut self, now: Instant, wall: DateTime<Utc>, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Unit(event) => self.on_event(now, wall, event, &mut out),
            Input::Child(ChildEvent::Started { key, pid }) => {
                self.spawn.started(&key, pid);
                out.push(Action::Persist);
            }
            Input::Child(ChildEvent::StartFailed { key }) => self.spawn.start_failed(&key),
            Input::Client(event) => self.on_client(now, wall, event, &mut out),
        }
        out
    }

    /// Route a unit-or-child event by the shape of its key.
    fn on_event(&mut self, now: Instant, wall: DateTime<Utc>, event: Event, out: &mut Vec<Action>) {
        let is_child = |unit: &str| split_key(unit).is_some();
        match event {
            Event::Exited { unit, pid, status } if is_child(&unit) => {
                self.core.drain_ended(&unit, pid);
                self.child_ended(now, &unit, format!("child ended ({status})"), out);
            }
            Event::ExecFailed { unit, pid, error } if is_child(&unit) => {
                self.core.drain_ended(&unit, pid);
                child(
                    out,
                    SpawnAction::Report {
                        unit: unit.clone(),
                        message: error,
                    },
                );
                let status = crate::spec::ExitStatus::Code(127);
                self.child_ended(now, &unit, format!("child ended ({status})"), out);
            }
            Event::StoppedOutside { unit, status, .. } if is_child(&unit) => {
                self.child_ended(now, &unit, format!("child ended ({status})"), out);
            }
            Event::Exited { unit, pid, status } => {
                self.service_ended(now, &unit, out);
                // How long the process ran, for the exit history (`inspect`).
                let ran = self
                    .core
                    .unit(&unit)
                    .filter(|u| u.pid == Some(pid))
                    .and_then(|u| u.since)
                    .map(|s| now.saturating_duration_since(s).as_secs_f64());
                out.push(Action::RecordExit {
                    unit: unit.clone(),
                    pid,
                    status,
                    ran,
                });
                self.unit_machine(now, wall, Event::Exited { unit, pid, status }, out);
            }
            Event::ExecFailed { unit, pid, error } => {
                self.service_ended(now, &unit, out);
                out.push(Action::RecordExit {
                    unit: unit.clone(),
                    pid,
                    status: crate::spec::ExitStatus::Code(127),
                    ran: Some(0.0),
                });
                self.unit_machine(now, wall, Event::ExecFailed { unit, pid, error }, out);
            }
            Event::StoppedOutside { unit, pid, status } => {
                self.service_ended(now, &unit, out);
                out.push(Action::RecordExit {
                    unit: unit.clone(),
                    pid,
                    status,
                    ran: None,
                });
                self.unit_machine(now, wall, Event::StoppedOutside { unit, pid, status }, out);
            }
            // The old process is gone: its spawned children follow their policy, as after any
            // end of their parent.
            Event::RestartedOutside { unit, old, pid } => {
                self.service_ended(now, &unit, out);
                self.unit_machine(now, wall, Event::RestartedOutside { unit, old, pid }, out);
            }
            // Each owner of timers acts on what is due.
            Event::Tick => {
                if self.spawn.next_deadline().is_some_and(|d| d <= now) {
                    for a in self.spawn.tick(now) {
                        child(out, a);
                    }
                }
                if self.core.next_deadline().is_some_and(|d| d <= now) {
                    self.unit_machine(now, wall, Event::Tick, out);
                }
            }
            event => self.unit_machine(now, wall, event, out),
        }
    }

    fn unit_machine(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        event: Event,
        out: &mut Vec<Action>,
    ) {
        out.extend(self.core.handle_at(now, wall, event));
    }

    /// A spawned child is gone.
    fn child_ended(&mut self, now: Instant, key: &str, message: String, out: &mut Vec<Action>) {
        child(
            out,
            SpawnAction::Report {
                unit: key.to_string(),
                message,
            },
        );
        for a in self.spawn.exited(now, key) {
            child(out, a);
        }
        out.push(Action::Persist);
    }

    /// A service's main process ended: its termination policy applies to its children.
    fn service_ended(&mut self, now: Instant, service: &str, out: &mut Vec<Action>) {
        for a in self.spawn.service_exited(now, service) {
            child(out, a);
        }
    }

    fn on_client(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        event: ClientEvent,
        out: &mut Vec<Action>,
    ) {
        match event {
            ClientEvent::Stop {
                client,
                services: Some(keys),
            } if keys.iter().any(|k| split_key(k).is_some()) => {
                self.stop_children(now, client, keys, out)
            }
            ClientEvent::Start { client, services }
            | ClientEvent::Restart { client, services }
            | ClientEvent::Stop { client, services }
                if self.unknown_services(&services).is_some() =>
            {
                let msg = self.unknown_services(&services).unwrap_or_default();
                reply(out, client, Answer::Refused(msg));
            }
            ClientEvent::Start { client, services } => {
                let request = Request::Start(services.clone());
                self.unit_machine(now, wall, Event::Request(request), out);
                self.wait(client, Goal::Settled(services));
            }
            ClientEvent::Restart { client, services } => {
                // Deployments this restart begins have later ids.
                let since = self.core.deploy_seq();
                let request = Request::Restart(services.clone());
                self.unit_machine(now, wall, Event::Request(request), out);
                self.wait(
                    client,
                    Goal::Deployed {
                        units: services,
                        since,
                        changes: None,
                    },
                );
            }
            ClientEvent::Stop { client, services } => {
                self.forget_when_down(services.as_deref());
                // Nothing escapes a stop of the whole project, whatever the termination policy;
                // a stop of single services follows it (their exits end their children).
                if services.is_none() {
                    self.stop_all_children(now, out);
                }
                let request = Request::Stop(services.clone());
                self.unit_machine(now, wall, Event::Request(request), out);
                self.wait(client, Goal::Down(services));
            }
            ClientEvent::Run { client, plan, wait } => {
                let name = plan.name.clone();
                self.adhoc.insert(name.clone(), plan.clone());
                self.unit_machine(now, wall, Event::Request(Request::Add(plan)), out);
                let goal = if wait {
                    Goal::Finished(name)
                } else {
                    Goal::Ran(name)
                };
                self.wait(client, goal);
            }
            ClientEvent::Reload {
                client,
                units,
                jobs,
                deployments,
                changes,
            } => {
                let mut next = units;
                next.extend(self.adhoc.values().cloned());
                self.core.set_deployments(deployments);
                let since = self.core.deploy_seq();
                self.unit_machine(now, wall, Event::Request(Request::Reload(next)), out);
                self.unit_machine(now, wall, Event::Request(Request::ReloadJobs(jobs)), out);
                if let Some(client) = client {
                    self.wait(
                        client,
                        Goal::Deployed {
                            units: None,
                            since,
                            changes,
                        },
                    );
                }
            }
            ClientEvent::AwaitSettled { client, services } => {
                self.wait(client, Goal::Settled(services))
            }
            ClientEvent::ReloadServices {
                client,
                signalled,
                commands,
                services,
                problems,
            } => {
                let notify = self.reload_sent(now, wall, signalled, out);
                self.wait(
                    client,
                    Goal::Reloaded {
                        notify,
                        commands,
                        services,
                        problems,
                    },
                );
            }
            ClientEvent::ReloadCommandDone {
                client,
                service,
                error,
            } => self.reload_command_done(client, &service, error),
            ClientEvent::Shutdown => {
                if !self.shutting_down {
                    self.shutting_down = true;
                    self.stop_all_children(now, out);
                    self.unit_machine(now, wall, Event::Request(Request::Stop(None)), out);
                }
            }
            ClientEvent::TurnEnded => self.answer_waiters(out),
            ClientEvent::Answered => self.forget_down_adhoc(now, wall, out),
        }
    }

    fn wait(&mut self, client: ClientId, goal: Goal) {
        self.waiters.push(Waiter { client, goal });
    }

    /// Stop every child regardless of its policy.
    fn stop_all_children(&mut self, now: Instant, out: &mut Vec<Action>) {
        for a in self.spawn.stop_all(now, None) {
            child(out, a);
        }
    }

    /// `sysg stop --service web/child`: stop these spawned children (what they spawned follows
    /// their termination policy); the answer comes once they are gone.
    fn stop_children(
        &mut self,
        now: Instant,
        client: ClientId,
        keys: Vec<String>,
        out: &mut Vec<Action>,
    ) {
        if let Some(k) = keys.iter().find(|k| self.spawn.child(k).is_none()) {
            let msg = match split_key(k) {
                Some((service, _)) => {
                    let names: Vec<String> = self
                        .spawn
                        .children_of(service)
                        .into_iter()
                        .map(|c| c.key)
                        .collect();
                    let names = if names.is_empty() {
                        "(none)".to_string()
                    } else {
                        names.join(", ")
                    };
                    format!("no spawned child `{k}` is running; children of {service}: {names}")
                }
                None => format!("`{k}` is a service, not a spawned child; stop it on its own"),
            };
            reply(out, client, Answer::Refused(msg));
            return;
        }
        for k in &keys {
            for a in self.spawn.stop_child(now, k, "stopped on request") {
                child(out, a);
            }
        }
        self.wait(client, Goal::ChildrenGone(keys));
    }

    /// The refusal of a request naming a service the plan does not have.
    pub fn unknown_services(&self, services: &Option<Vec<String>>) -> Option<String> {
        let names: Vec<String> = self.core.units().into_iter().map(|u| u.name).collect();
        let bad = services.iter().flatten().find(|s| !names.contains(s))?;
        Some(format!(
            "unknown service `{bad}`; services are: {}",
            names.join(", ")
        ))
    }
}

fn child(out: &mut Vec<Action>, a: SpawnAction) {
    out.push(Action::Child(a));
}

pub(super) fn reply(out: &mut Vec<Action>, client: ClientId, answer: Answer) {
    out.push(Action::Reply { client, answer });
}
