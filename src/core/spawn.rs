//! Dynamic spawning, the pure part: one spawn tree per service with `spawn.mode: dynamic`.
//!
//! A service (or a child it spawned) asks the supervisor to start a named child at run time.
//! This module decides whether that is allowed (limits, rate, depth), remembers every child
//! (its parent, depth, start, TTL deadline), and says what to do when time passes (TTL expiry,
//! stop timeouts) or when a parent ends (`cascade` stops the subtree, `orphan` leaves it
//! running and tracked). Like the rest of the core it never reads the clock or touches a
//! process: the runtime passes `now` in and carries out the returned `SpawnAction`s.
//!
//! Children are keyed `<service>/<child>`: child names are unique within one service's tree,
//! whatever their depth, and `/` never appears in a service name, so a key never collides with
//! a service.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::schema::{Spawn, SpawnMode, TerminationPolicy};

/// Key of a spawned child: `<service>/<child>`.
pub type ChildKey = String;

/// Without a `descendants` limit a tree still stops growing here, so that a child spawning as
/// fast as it can (each new child doing the same) cannot take the machine down.
pub const DEFAULT_MAX_DESCENDANTS: u32 = 1024;

/// The window of the spawn rate limit.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The limits of one service's tree, from `spawn.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnLimits {
    /// Direct children per parent.
    pub children: Option<u32>,
    /// Deepest level a child may be at (the service's own children are at depth 1).
    pub depth: Option<u32>,
    /// Children in the whole tree.
    pub descendants: Option<u32>,
    /// Spawns per second per parent.
    pub rate_per_sec: u32,
    pub termination: TerminationPolicy,
}

impl SpawnLimits {
    /// The limits of a service's `spawn:` section; `None` unless its mode is dynamic.
    pub fn of(spawn: Option<&Spawn>) -> Option<SpawnLimits> {
        let s = spawn.filter(|s| s.mode == SpawnMode::Dynamic)?;
        Some(SpawnLimits {
            children: s.children,
            depth: s.depth,
            descendants: s.descendants,
            rate_per_sec: s.rate_per_sec.max(1),
            termination: s.termination_policy,
        })
    }
}

/// Who asks for (or owns) a child.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// The service itself (any process of its tree).
    Service(String),
    /// A child spawned earlier (any process of its tree).
    Child { service: String, name: String },
}

impl Owner {
    /// The service whose tree this owner belongs to.
    pub fn service(&self) -> &str {
        match self {
            Owner::Service(s) => s,
            Owner::Child { service, .. } => service,
        }
    }

    /// How the owner is named in messages and in `status`: the service, or the child's name.
    pub fn label(&self) -> &str {
        match self {
            Owner::Service(s) => s,
            Owner::Child { name, .. } => name,
        }
    }
}

/// Why a spawn was refused. The message names the limit that was hit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("refused: service `{0}` does not allow dynamic spawning (set `spawn.mode: dynamic`)")]
    NotDynamic(String),
    #[error("refused: invalid child name `{0}` (use letters, digits, `_`, `.` and `-`)")]
    BadName(String),
    #[error("refused: the command is empty")]
    EmptyCommand,
    #[error("refused: `{service}` already has a child named `{name}`")]
    Duplicate { service: String, name: String },
    #[error("refused: `{0}` is stopping")]
    ParentStopping(String),
    #[error("refused: {parent} already has {have} children (spawn.limits.children: {limit})")]
    Children {
        parent: String,
        have: usize,
        limit: u32,
    },
    #[error(
        "refused: a child of {parent} would be at depth {depth} (spawn.limits.depth: {limit})"
    )]
    Depth {
        parent: String,
        depth: u32,
        limit: u32,
    },
    #[error(
        "refused: {service} already has {have} descendants (spawn.limits.descendants: {limit})"
    )]
    Descendants {
        service: String,
        have: usize,
        limit: u32,
    },
    #[error("refused: {parent} spawned {limit} children in the last second (spawn.limits.rate: {limit})")]
    Rate { parent: String, limit: u32 },
}

/// Something the runtime must do to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnAction {
    /// Send `signal` to the child's processes.
    Signal { unit: ChildKey, signal: i32 },
    /// SIGKILL the child's processes (it ignored the stop signal for its stop timeout).
    Kill { unit: ChildKey },
    /// A notable event for the supervisor log.
    Report { unit: ChildKey, message: String },
}

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Admitted; the backend is starting it.
    Starting,
    Running,
    /// Stop signal sent; killed at `kill_at`.
    Stopping,
}

/// How a child is stopped (from its service's `stop_signal` and `stop_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopHow {
    pub signal: i32,
    pub timeout: Duration,
}

/// One tracked child.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub name: String,
    pub parent: Owner,
    /// 1 for a child of the service, 2 for a grandchild, …
    pub depth: u32,
    pub pid: Option<u32>,
    pub started: Instant,
    pub ttl_deadline: Option<Instant>,
    pub state: ChildState,
    kill_at: Option<Instant>,
    stop: StopHow,
}

/// The tree of one service.
#[derive(Debug, Default)]
struct Tree {
    /// `None` once the service is no longer dynamic (or no longer configured): its existing
    /// children stay tracked, new ones are refused.
    limits: Option<SpawnLimits>,
    children: BTreeMap<String, Child>,
    /// Recent admissions per parent, for the rate limit.
    recent: HashMap<Owner, VecDeque<Instant>>,
}

impl Tree {
    /// Names of every child below `root` (its children, their children, …).
    fn subtree(&self, root: &Owner) -> Vec<String> {
        let mut out = Vec::new();
        let mut frontier = vec![root.clone()];
        while let Some(p) = frontier.pop() {
            for (n, c) in &self.children {
                if c.parent == p && !out.contains(n) {
                    out.push(n.clone());
                    frontier.push(Owner::Child {
                        service: p.service().to_string(),
                        name: n.clone(),
                    });
                }
            }
        }
        out
    }
}

/// A read-only view of one child, for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildView {
    pub key: ChildKey,
    pub name: String,
    /// The service, or the name of the child that spawned it.
    pub parent: String,
    pub depth: u32,
    pub pid: Option<u32>,
    pub state: ChildState,
    pub started: Instant,
    pub ttl_deadline: Option<Instant>,
}

/// Every service's spawn tree.
#[derive(Debug, Default)]
pub struct SpawnTree {
    trees: BTreeMap<String, Tree>,
}

/// The key of `name` in `service`'s tree.
pub fn key(service: &str, name: &str) -> ChildKey {
    format!("{service}/{name}")
}

/// Split a key into service and child name; `None` for a service name.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

fn valid_child_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl SpawnTree {
    /// An empty set of trees.
    pub fn new() -> SpawnTree {
        SpawnTree::default()
    }

    /// Set (or clear) the limits of `service` (at start and on every reload).
    pub fn configure(&mut self, service: &str, limits: Option<SpawnLimits>) {
        match limits {
            Some(l) => self.trees.entry(service.to_string()).or_default().limits = Some(l),
            None => {
                if let Some(t) = self.trees.get_mut(service) {
                    t.limits = None;
                }
            }
        }
    }

    /// Services whose limits are set: the only ones whose processes may spawn.
    pub fn dynamic_services(&self) -> Vec<String> {
        self.trees
            .iter()
            .filter(|(_, t)| t.limits.is_some())
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Decide whether `parent` may start a child `name` now and, if so, reserve it (so that
    /// concurrent requests count it) and return its key. The runtime then starts it and
    /// answers with `started` or `start_failed`.
    pub fn admit(
        &mut self,
        now: Instant,
        parent: &Owner,
        name: &str,
        ttl: Option<Duration>,
        stop: StopHow,
    ) -> Result<ChildKey, Refusal> {
        let service = parent.service().to_string();
        let tree = match self.trees.get_mut(&service) {
            Some(t) if t.limits.is_some() => t,
            _ => return Err(Refusal::NotDynamic(service)),
        };
        let Some(limits) = tree.limits else {
            return Err(Refusal::NotDynamic(service));
        };
        if !valid_child_name(name) {
            return Err(Refusal::BadName(name.to_string()));
        }
        if tree.children.contains_key(name) {
            return Err(Refusal::Duplicate {
                service,
                name: name.to_string(),
            });
        }
        let parent_depth = match parent {
            Owner::Service(_) => 0,
            Owner::Child { name: p, .. } => match tree.children.get(p) {
                Some(c) if c.state == ChildState::Stopping => {
                    return Err(Refusal::ParentStopping(p.clone()))
                }
                Some(c) => c.depth,
                None => return Err(Refusal::ParentStopping(p.clone())),
            },
        };
        let depth = parent_depth + 1;
        if let Some(limit) = limits.depth {
            if depth > limit {
                return Err(Refusal::Depth {
                    parent: parent.label().to_string(),
                    depth,
                    limit,
                });
            }
        }
        let direct = tree
            .children
            .values()
            .filter(|c| &c.parent == parent)
            .count();
        if let Some(limit) = limits.children {
            if direct >= limit as usize {
                return Err(Refusal::Children {
                    parent: parent.label().to_string(),
                    have: direct,
                    limit,
                });
            }
        }
        let all = tree.children.len();
        let max_all = limits.descendants.unwrap_or(DEFAULT_MAX_DESCENDANTS);
        if all >= max_all as usize {
            return Err(Refusal::Descendants {
                service,
                have: all,
                limit: max_all,
            });
        }
        let recent = tree.recent.entry(parent.clone()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= limits.rate_per_sec as usize {
            return Err(Refusal::Rate {
                parent: parent.label().to_string(),
                limit: limits.rate_per_sec,
            });
        }
        recent.push_back(now);
        tree.children.insert(
            name.to_string(),
            Child {
                name: name.to_string(),
                parent: parent.clone(),
                depth,
                pid: None,
                started: now,
                ttl_deadline: ttl.map(|d| now + d),
                state: ChildState::Starting,
                kill_at: None,
                stop,
            },
        );
        Ok(key(&service, name))
    }

    /// The backend started the child.
    pub fn started(&mut self, key: &str, pid: u32) {
        if let Some(c) = self.child_mut(key) {
            c.pid = Some(pid);
            if c.state == ChildState::Starting {
                c.state = ChildState::Running;
            }
        }
    }

    /// The backend could not start the child: forget it.
    pub fn start_failed(&mut self, key: &str) {
        if let Some((s, n)) = split_key(key) {
            if let Some(t) = self.trees.get_mut(s) {
                t.children.remove(n);
            }
        }
    }

    /// A child found running by a new supervisor (from state.json).
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(
        &mut self,
        key: &str,
        parent: Owner,
        depth: u32,
        pid: u32,
        started: Instant,
        ttl_deadline: Option<Instant>,
        stop: StopHow,
    ) {
        let Some((s, n)) = split_key(key) else { return };
        self.trees
            .entry(s.to_string())
            .or_default()
            .children
            .insert(
                n.to_string(),
                Child {
                    name: n.to_string(),
                    parent,
                    depth,
                    pid: Some(pid),
                    started,
                    ttl_deadline,
                    state: ChildState::Running,
                    kill_at: None,
                    stop,
                },
            );
    }

    /// The child's main process ended: forget it, and apply its service's termination policy
    /// to what it spawned.
    pub fn exited(&mut self, now: Instant, key: &str) -> Vec<SpawnAction> {
        let Some((s, n)) = split_key(key) else {
            return Vec::new();
        };
        let Some(tree) = self.trees.get_mut(s) else {
            return Vec::new();
        };
        if tree.children.remove(n).is_none() {
            return Vec::new();
        }
        let owner = Owner::Child {
            service: s.to_string(),
            name: n.to_string(),
        };
        tree.recent.remove(&owner);
        self.parent_ended(now, &owner)
    }

    /// The service's main process ended (crash, exit, or stop): its termination policy decides
    /// whether its tree is stopped.
    pub fn service_exited(&mut self, now: Instant, service: &str) -> Vec<SpawnAction> {
        self.parent_ended(now, &Owner::Service(service.to_string()))
    }

    fn parent_ended(&mut self, now: Instant, owner: &Owner) -> Vec<SpawnAction> {
        let Some(tree) = self.trees.get(owner.service()) else {
            return Vec::new();
        };
        // A service no longer dynamic keeps the default: nothing outlives its parent.
        let policy = tree
            .limits
            .map_or(TerminationPolicy::Cascade, |l| l.termination);
        if policy == TerminationPolicy::Orphan {
            return Vec::new();
        }
        let names = tree.subtree(owner);
        let service = owner.service().to_string();
        let why = format!(
            "its parent {} ended (termination_policy: cascade)",
            owner.label()
        );
        self.stop_names(now, &service, &names, &why)
    }

    /// Stop every child of these services (all when `None`), whatever the policy: nothing
    /// escapes `sysg stop`.
    pub fn stop_all(&mut self, now: Instant, services: Option<&[String]>) -> Vec<SpawnAction> {
        let mut out = Vec::new();
        let selected: Vec<String> = self
            .trees
            .keys()
            .filter(|s| services.is_none_or(|v| v.contains(s)))
            .cloned()
            .collect();
        for s in selected {
            let names: Vec<String> = self
                .trees
                .get(&s)
                .map(|t| t.children.keys().cloned().collect())
                .unwrap_or_default();
            out.extend(self.stop_names(now, &s, &names, "stopped with its service"));
        }
        out
    }

    /// Stop one child (`sysg stop --service web/child`, TTL expiry).
    pub fn stop_child(&mut self, now: Instant, key: &str, why: &str) -> Vec<SpawnAction> {
        let Some((s, n)) = split_key(key) else {
            return Vec::new();
        };
        self.stop_names(now, s, &[n.to_string()], why)
    }

    fn stop_names(
        &mut self,
        now: Instant,
        service: &str,
        names: &[String],
        why: &str,
    ) -> Vec<SpawnAction> {
        let mut out = Vec::new();
        let Some(tree) = self.trees.get_mut(service) else {
            return out;
        };
        for n in names {
            let Some(c) = tree.children.get_mut(n) else {
                continue;
            };
            if c.state == ChildState::Stopping {
                continue;
            }
            c.state = ChildState::Stopping;
            c.kill_at = Some(now + c.stop.timeout);
            let unit = key(service, n);
            out.push(SpawnAction::Report {
                unit: unit.clone(),
                message: format!("stopping: {why}"),
            });
            out.push(SpawnAction::Signal {
                unit,
                signal: c.stop.signal,
            });
        }
        out
    }

    /// Do what is due at `now`: stop children whose TTL expired, kill those that ignored the
    /// stop signal.
    pub fn tick(&mut self, now: Instant) -> Vec<SpawnAction> {
        let mut expired = Vec::new();
        let mut out = Vec::new();
        for (s, tree) in &mut self.trees {
            for (n, c) in &mut tree.children {
                match c.state {
                    ChildState::Stopping => {
                        if c.kill_at.is_some_and(|k| k <= now) {
                            c.kill_at = None;
                            out.push(SpawnAction::Kill { unit: key(s, n) });
                        }
                    }
                    _ => {
                        if c.ttl_deadline.is_some_and(|d| d <= now) {
                            expired.push(key(s, n));
                        }
                    }
                }
            }
        }
        for k in expired {
            out.extend(self.stop_child(now, &k, "its TTL expired"));
        }
        out
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.trees
            .values()
            .flat_map(|t| t.children.values())
            .filter_map(|c| match c.state {
                ChildState::Stopping => c.kill_at,
                _ => c.ttl_deadline,
            })
            .min()
    }

    /// Pids of the children with a process, and who they are (for authorizing spawns from
    /// inside a child).
    pub fn pids(&self) -> Vec<(u32, Owner)> {
        self.trees
            .iter()
            .flat_map(|(s, t)| {
                t.children.values().filter_map(move |c| {
                    c.pid.map(|p| {
                        (
                            p,
                            Owner::Child {
                                service: s.clone(),
                                name: c.name.clone(),
                            },
                        )
                    })
                })
            })
            .collect()
    }

    /// One child.
    pub fn child(&self, key: &str) -> Option<&Child> {
        let (s, n) = split_key(key)?;
        self.trees.get(s)?.children.get(n)
    }

    fn child_mut(&mut self, key: &str) -> Option<&mut Child> {
        let (s, n) = split_key(key)?;
        self.trees.get_mut(s)?.children.get_mut(n)
    }

    /// Every child of `service`'s tree, parents before their children.
    pub fn children_of(&self, service: &str) -> Vec<ChildView> {
        let Some(tree) = self.trees.get(service) else {
            return Vec::new();
        };
        let mut out: Vec<ChildView> = tree
            .children
            .values()
            .map(|c| ChildView {
                key: key(service, &c.name),
                name: c.name.clone(),
                parent: c.parent.label().to_string(),
                depth: c.depth,
                pid: c.pid,
                state: c.state,
                started: c.started,
                ttl_deadline: c.ttl_deadline,
            })
            .collect();
        out.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.started.cmp(&b.started)));
        out
    }

    /// True when some child of these services (all when `None`) still has a process.
    pub fn any_alive(&self, services: Option<&[String]>) -> bool {
        self.trees
            .iter()
            .filter(|(s, _)| services.is_none_or(|v| v.contains(s)))
            .any(|(_, t)| !t.children.is_empty())
    }

    /// True when some child of these services is being stopped.
    pub fn any_stopping(&self, services: Option<&[String]>) -> bool {
        self.trees
            .iter()
            .filter(|(s, _)| services.is_none_or(|v| v.contains(s)))
            .any(|(_, t)| t.children.values().any(|c| c.state == ChildState::Stopping))
    }
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
