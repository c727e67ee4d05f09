//! Property-style test: random plans and random event sequences against a fake runtime,
//! checking invariants after every step. A tiny deterministic PRNG keeps failures reproducible.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::schema::{DepCondition, Dependency, HealthCheck, Probe, RestartPolicy};
use crate::spec::{ExitStatus, UnitSpec};

/// xorshift64*: enough randomness for scheduling choices, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
}

const NAMES: [&str; 6] = ["n0", "n1", "n2", "n3", "n4", "n5"];

fn random_plan(rng: &mut Rng) -> Vec<UnitPlan> {
    let count = 2 + rng.below(NAMES.len() - 1);
    let mut names: Vec<&str> = NAMES[..count].to_vec();
    // Occasionally drop one so reloads add and remove.
    if rng.chance(30) {
        names.remove(rng.below(names.len()));
    }
    let mut plan = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut depends_on = Vec::new();
        for other in &names[..i] {
            if rng.chance(35) {
                depends_on.push(Dependency {
                    service: (*other).to_string(),
                    condition: match rng.below(5) {
                        0 => DepCondition::Completed,
                        1 => DepCondition::Healthy,
                        _ => DepCondition::Started,
                    },
                });
            }
        }
        // Rarely a cycle or a dangling name: validation rejects them, the core must cope.
        if rng.chance(3) {
            depends_on.push(Dependency {
                service: NAMES[rng.below(NAMES.len())].to_string(),
                condition: DepCondition::Started,
            });
        }
        plan.push(UnitPlan {
            name: (*name).to_string(),
            spec: Arc::new(UnitSpec {
                stop_timeout: Duration::from_secs(1 + rng.below(10) as u64),
                ..UnitSpec::new("p", *name, vec![format!("/bin/{}", rng.below(3))])
            }),
            depends_on,
            restart: match rng.below(3) {
                0 => RestartPolicy::Never,
                1 => RestartPolicy::OnFailure,
                _ => RestartPolicy::Always,
            },
            backoff: Duration::from_millis(rng.below(3000) as u64),
            max_restarts: if rng.chance(50) {
                None
            } else {
                Some(rng.below(4) as u32)
            },
            settle: if rng.chance(50) {
                Duration::ZERO
            } else {
                Duration::from_millis(rng.below(400) as u64)
            },
            health: rng.chance(35).then(|| {
                Arc::new(HealthCheck {
                    probe: Probe::Command {
                        command: "true".into(),
                    },
                    interval: Duration::from_millis(100 + rng.below(5_000) as u64),
                    timeout: Duration::from_millis(100 + rng.below(2_000) as u64),
                    retries: rng.below(4) as u32,
                    start_period: Duration::from_millis(rng.below(3_000) as u64),
                    start_interval: Duration::from_millis(1 + rng.below(5_000) as u64),
                })
            }),
        });
    }
    plan
}

/// A fake runtime: which processes really exist, which starts await an answer.
struct World {
    core: Core,
    now: Instant,
    rng: Rng,
    next_pid: u32,
    /// unit -> pid of its live process.
    live: HashMap<String, u32>,
    /// Units whose `Action::Start` has not been answered yet.
    starting: Vec<String>,
    /// Units whose process was signalled or killed (and may now exit).
    asked_to_exit: HashSet<String>,
    /// Units seen `Stopped`; they must not get `Action::Start` without a new request.
    stopped: HashSet<String>,
    steps: usize,
    seed: u64,
    /// The plan last given to the core.
    plan: Vec<UnitPlan>,
    /// Probes issued and not answered yet: (unit, probe id).
    probes: Vec<(String, u64)>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let plan = random_plan(&mut rng);
        World {
            core: Core::new(plan.clone()),
            plan,
            now: Instant::now(),
            rng,
            next_pid: 1000,
            live: HashMap::new(),
            starting: Vec::new(),
            asked_to_exit: HashSet::new(),
            stopped: HashSet::new(),
            steps: 0,
            seed,
            probes: Vec::new(),
        }
    }

    fn names(&self) -> Vec<String> {
        self.core.units().into_iter().map(|v| v.name).collect()
    }

    fn random_names(&mut self) -> Vec<String> {
        let mut out: Vec<String> = NAMES
            .iter()
            .filter(|_| self.rng.chance(30))
            .map(|n| n.to_string())
            .collect();
        if self.rng.chance(5) {
            out.push("ghost".into());
        }
        out
    }

    /// Feed one event, carry out the actions in the fake, check the invariants.
    fn feed(&mut self, ev: Event) {
        self.steps += 1;
        let is_request = matches!(
            ev,
            Event::Request(Request::Start(_) | Request::Restart(_) | Request::Reload(_))
        );
        if is_request {
            self.stopped.clear();
        }
        if let Event::Request(Request::Reload(plan)) = &ev {
            self.plan = plan.clone();
        }
        let adopted = match &ev {
            Event::Adopted { unit, pid } => Some((unit.clone(), *pid)),
            _ => None,
        };
        if let Some((unit, _)) = &adopted {
            // An adopted process is a unit the supervisor found up: it is wanted again.
            self.stopped.remove(unit);
        }
        let ctx = format!("seed {} step {} event {ev:?}", self.seed, self.steps);
        let acts = self.core.handle(self.now, ev);
        if std::env::var_os("CORE_TRACE").is_some() {
            eprintln!("{ctx}\n  -> {acts:?}");
            for v in self.core.units() {
                eprintln!("     {} {:?} {:?} {:?}", v.name, v.state, v.pid, v.reason);
            }
        }
        if let Some((unit, pid)) = adopted {
            if self.core.unit(&unit).and_then(|v| v.pid) == Some(pid) {
                self.live.insert(unit, pid);
            }
        }
        for a in &acts {
            match a {
                Action::Start { unit, .. } => {
                    assert!(!self.live.contains_key(unit), "{ctx}: start of live {unit}");
                    assert!(
                        !self.starting.contains(unit),
                        "{ctx}: second start of {unit}"
                    );
                    assert!(
                        !self.stopped.contains(unit),
                        "{ctx}: user-stopped {unit} started without a request"
                    );
                    self.starting.push(unit.clone());
                    self.asked_to_exit.remove(unit);
                    self.check_deps_allow(&ctx, unit);
                }
                Action::Signal { unit, .. } | Action::Kill { unit } => {
                    assert!(self.live.contains_key(unit), "{ctx}: signal to dead {unit}");
                    self.asked_to_exit.insert(unit.clone());
                }
                Action::Report { unit, .. } => {
                    assert!(NAMES.contains(&unit.as_str()), "{ctx}: report for {unit}");
                }
                Action::Notify(n) => {
                    assert!(NAMES.contains(&n.unit.as_str()), "{ctx}: notice for {n:?}");
                }
                Action::Deploy(d) => panic!("{ctx}: deployment step without a plan: {d:?}"),
                Action::Probe { unit, probe, .. } => {
                    // Only a running process with a health check is probed.
                    assert!(self.live.contains_key(unit), "{ctx}: probe of dead {unit}");
                    let v = self.core.unit(unit);
                    assert!(
                        v.as_ref().is_some_and(|v| v.state == StateKind::Running),
                        "{ctx}: probe of {unit} while {v:?}"
                    );
                    assert!(
                        self.plan
                            .iter()
                            .any(|p| &p.name == unit && p.health.is_some()),
                        "{ctx}: probe of {unit} without a health check"
                    );
                    self.probes.push((unit.clone(), *probe));
                }
                Action::Persist => {}
                Action::ArmTimer { .. } | Action::DisarmTimer { .. } | Action::Trigger { .. } => {
                    panic!("{ctx}: timer action without cron jobs: {a:?}")
                }
                Action::Reply { .. } | Action::Child(_) | Action::RecordExit { .. } => {
                    panic!("{ctx}: the unit state machine answered for Supervision: {a:?}")
                }
            }
        }
        self.check(&ctx);
    }

    /// A unit is started only while each dependency satisfies its condition.
    fn check_deps_allow(&self, ctx: &str, unit: &str) {
        let Some(plan) = self.plan.iter().find(|p| p.name == unit) else {
            panic!("{ctx}: start of {unit} which is not in the plan");
        };
        for d in &plan.depends_on {
            let state = self.core.unit(&d.service).map(|v| v.state);
            let ok = match d.condition {
                DepCondition::Completed => matches!(
                    state,
                    Some(
                        StateKind::Completed
                            | StateKind::Running
                            | StateKind::Backoff
                            | StateKind::Starting
                            | StateKind::Waiting
                    )
                ),
                _ => matches!(state, Some(StateKind::Running | StateKind::Completed)),
            };
            assert!(ok, "{ctx}: {unit} started while {} is {state:?}", d.service);
            // A health-checked dependency gates `healthy` dependents on its probes.
            let view = self.core.unit(&d.service);
            if d.condition == DepCondition::Healthy
                && state == Some(StateKind::Running)
                && self
                    .plan
                    .iter()
                    .any(|p| p.name == d.service && p.health.is_some())
            {
                let health = view.and_then(|v| v.health);
                assert_eq!(
                    health,
                    Some(Health::Healthy),
                    "{ctx}: {unit} started before {} was healthy",
                    d.service
                );
            }
        }
    }

    fn check(&mut self, ctx: &str) {
        let views = self.core.units();
        let mut seen = HashSet::new();
        for v in &views {
            assert!(seen.insert(v.name.clone()), "{ctx}: duplicate {}", v.name);
            // The core's pid is exactly the fake's live process.
            assert_eq!(
                v.pid,
                self.live.get(&v.name).copied(),
                "{ctx}: pid of {} ({:?})",
                v.name,
                v.state
            );
            let starting = self.starting.contains(&v.name);
            match v.state {
                StateKind::Starting => assert!(starting, "{ctx}: {} starting unasked", v.name),
                StateKind::Running => assert!(v.pid.is_some(), "{ctx}: {} running", v.name),
                StateKind::Stopping => {
                    assert!(v.pid.is_some() || starting, "{ctx}: {} stopping", v.name)
                }
                StateKind::Backoff => {
                    assert!(v.next_restart.is_some(), "{ctx}: {} backoff", v.name);
                    assert!(v.pid.is_none() && !starting);
                }
                _ => assert!(
                    v.pid.is_none() && !starting,
                    "{ctx}: {} {:?} with a process",
                    v.name,
                    v.state
                ),
            }
            if v.state == StateKind::Stopped {
                self.stopped.insert(v.name.clone());
            }
        }
        for unit in self.live.keys().chain(self.starting.iter()) {
            assert!(seen.contains(unit), "{ctx}: {unit} forgotten while alive");
        }
        let live = views.iter().any(|v| {
            matches!(
                v.state,
                StateKind::Starting | StateKind::Running | StateKind::Stopping
            )
        });
        assert_eq!(self.core.idle(), !live, "{ctx}: idle");
        // Waiting holds a start up, unless it waits on a unit failing its start-up (views
        // list the plan's units first, in the core's order).
        let failing = self.core.failing_start_closure();
        if views
            .iter()
            .zip(&failing)
            .any(|(v, f)| v.state == StateKind::Waiting && !f)
        {
            assert!(!self.core.settled(None), "{ctx}: settled while waiting");
        }
        if let Some(d) = self.core.next_deadline() {
            // Deadlines are never more than the cap plus the largest stop timeout away.
            assert!(d.saturating_duration_since(self.now) <= MAX_BACKOFF + Duration::from_secs(10));
        }
    }

    fn answer_start(&mut self) {
        if self.starting.is_empty() {
            return;
        }
        let unit = self.starting.remove(self.rng.below(self.starting.len()));
        if self.rng.chance(85) {
            self.next_pid += 1;
            let pid = self.next_pid;
            self.live.insert(unit.clone(), pid);
            self.feed(Event::Started { unit, pid });
        } else {
            self.feed(Event::StartFailed {
                unit,
                error: "boom".into(),
            });
        }
    }

    fn exit(&mut self, unit: String) {
        let Some(pid) = self.live.remove(&unit) else {
            return;
        };
        self.asked_to_exit.remove(&unit);
        let status = match self.rng.below(4) {
            0 => ExitStatus::Code(0),
            1 => ExitStatus::Code(1),
            2 => ExitStatus::Signal(15),
            _ => ExitStatus::Unknown,
        };
        self.feed(Event::Exited { unit, pid, status });
    }

    fn step(&mut self) {
        match self.rng.below(16) {
            14 | 15 => {
                // Answer a probe (maybe one the core no longer waits for).
                if !self.probes.is_empty() {
                    let (unit, probe) = self.probes.remove(self.rng.below(self.probes.len()));
                    let ok = self.rng.chance(60);
                    self.feed(Event::ProbeResult {
                        unit,
                        probe,
                        ok,
                        detail: if ok { String::new() } else { "refused".into() },
                    });
                }
            }
            0..=2 => self.answer_start(),
            3 | 4 => {
                let mut asked: Vec<String> = self.asked_to_exit.iter().cloned().collect();
                asked.sort();
                if let Some(u) = self.rng.pick(&asked).cloned() {
                    self.exit(u);
                }
            }
            5 => {
                let mut live: Vec<String> = self.live.keys().cloned().collect();
                live.sort();
                if let Some(u) = self.rng.pick(&live).cloned() {
                    self.exit(u);
                }
            }
            6 | 7 => {
                match self.core.next_deadline() {
                    Some(d) if self.rng.chance(70) => self.now = self.now.max(d),
                    _ => self.now += Duration::from_millis(self.rng.below(90_000) as u64),
                }
                self.feed(Event::Tick);
            }
            8 => {
                let r = match self.rng.below(3) {
                    0 => Request::Start(None),
                    1 => Request::Stop(None),
                    _ => Request::Restart(None),
                };
                self.feed(Event::Request(r));
            }
            9 => {
                let names = self.random_names();
                let r = match self.rng.below(3) {
                    0 => Request::Start(Some(names)),
                    1 => Request::Stop(Some(names)),
                    _ => Request::Restart(Some(names)),
                };
                self.feed(Event::Request(r));
            }
            10 => {
                let plan = random_plan(&mut self.rng);
                self.feed(Event::Request(Request::Reload(plan)));
            }
            11 => {
                // Stale events: an exit of a pid that never lived, events for unknown units.
                let names = self.names();
                let unit = self.rng.pick(&names).cloned().unwrap_or_default();
                let ev = match self.rng.below(3) {
                    0 => Event::Exited {
                        unit,
                        pid: 1 + self.rng.below(999) as u32,
                        status: ExitStatus::Code(1),
                    },
                    1 => Event::Started {
                        unit: "ghost".into(),
                        pid: 5,
                    },
                    _ => Event::StartFailed {
                        unit: "ghost".into(),
                        error: "x".into(),
                    },
                };
                self.feed(ev);
            }
            12 => {
                // Adoption of a unit with no process.
                let names = self.names();
                if let Some(unit) = self.rng.pick(&names).cloned() {
                    if !self.live.contains_key(&unit) && !self.starting.contains(&unit) {
                        self.next_pid += 1;
                        let pid = self.next_pid;
                        self.feed(Event::Adopted { unit, pid });
                    }
                }
            }
            _ => {
                self.now += Duration::from_millis(self.rng.below(5_000) as u64);
                self.feed(Event::Tick);
            }
        }
    }

    /// Stop everything and run the fake until idle: a stop-all must always converge.
    fn drain(&mut self) {
        self.feed(Event::Request(Request::Stop(None)));
        for _ in 0..500 {
            if self.core.idle() && self.starting.is_empty() {
                break;
            }
            if !self.starting.is_empty() {
                self.answer_start();
                continue;
            }
            let mut asked: Vec<String> = self.asked_to_exit.iter().cloned().collect();
            asked.sort();
            if let Some(u) = asked.first().cloned() {
                self.exit(u);
                continue;
            }
            match self.core.next_deadline() {
                Some(d) => self.now = self.now.max(d),
                None => self.now += Duration::from_secs(1),
            }
            self.feed(Event::Tick);
        }
        assert!(
            self.core.idle(),
            "stop-all did not converge: {:?}",
            self.core.units()
        );
        assert!(self.live.is_empty(), "processes left: {:?}", self.live);
        for v in self.core.units() {
            assert!(
                matches!(
                    v.state,
                    StateKind::Stopped | StateKind::Completed | StateKind::Failed
                ),
                "{} ended {:?}",
                v.name,
                v.state
            );
        }
        // And nothing wakes up by itself afterwards.
        self.now += Duration::from_secs(3600);
        let acts = self.core.handle(self.now, Event::Tick);
        assert!(acts.is_empty(), "{acts:?}");
    }
}

#[test]
fn random_event_sequences_keep_invariants() {
    // CORE_SEEDS=N widens the search when hunting for a bug.
    let seeds = std::env::var("CORE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    for seed in 1..=seeds {
        let mut w = World::new(seed);
        w.feed(Event::Request(Request::Start(None)));
        for _ in 0..400 {
            w.step();
        }
        w.drain();
    }
}

#[test]
fn random_boot_without_failures_reaches_settled() {
    // With every start succeeding and nothing crashing, a plan settles with all units up
    // (or blocked behind a cycle or unknown name).
    for seed in 1..=200u64 {
        let mut w = World::new(seed);
        // A `Completed` condition on a long-running dependency would (rightly) wait forever.
        let mut plan = random_plan(&mut w.rng);
        for p in &mut plan {
            // Probes repeat forever; this test runs timers until none is left.
            p.health = None;
            for d in &mut p.depends_on {
                d.condition = DepCondition::Started;
            }
        }
        w.core = Core::new(plan.clone());
        w.plan = plan;
        w.feed(Event::Request(Request::Start(None)));
        loop {
            while let Some(unit) = w.starting.first().cloned() {
                w.starting.remove(0);
                w.next_pid += 1;
                let pid = w.next_pid;
                w.live.insert(unit.clone(), pid);
                w.feed(Event::Started { unit, pid });
            }
            // Let settle windows pass: dependents start once their dependencies are up.
            match w.core.next_deadline() {
                Some(t) => {
                    w.now = w.now.max(t);
                    w.feed(Event::Tick);
                }
                None => break,
            }
        }
        assert!(w.core.settled(None), "seed {seed}: {:?}", w.core.units());
        for v in w.core.units() {
            assert!(
                matches!(v.state, StateKind::Running | StateKind::Blocked),
                "seed {seed}: {} {:?}",
                v.name,
                v.state
            );
        }
    }
}
