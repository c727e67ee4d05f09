//! Dependency graph: start order, closures, and whether a dependency's condition holds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::unit::{State, StopWhy, Unit};
use crate::config::schema::DepCondition;

/// Why a dependency check is being made: before starting a unit, or to keep one running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// May the dependent start now?
    Start,
    /// May the (running or starting) dependent stay up?
    Keep,
}

/// Result of checking one dependency (or all of a unit's dependencies).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Check {
    /// The condition holds.
    Satisfied,
    /// The condition may still come to hold; the text says what is awaited.
    Pending(String),
    /// The condition cannot hold without a new request or a recovery; the text names why.
    Broken(String),
}

/// Units in start order (dependencies first, plan order among equals), and which units could
/// not be ordered because they sit in or behind a cycle (appended at the end in plan order).
pub(crate) fn topo_order(units: &[Unit]) -> (Vec<usize>, Vec<bool>) {
    let index: HashMap<&str, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.name(), i))
        .collect();
    let mut indegree = vec![0usize; units.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (i, u) in units.iter().enumerate() {
        for dep in &u.plan.depends_on {
            // Unknown dependencies do not order anything; the check reports them instead.
            if let Some(&j) = index.get(dep.service.as_str()) {
                indegree[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    // A min-heap keeps the order stable: among ready units, plan order wins.
    let mut ready: BinaryHeap<Reverse<usize>> = indegree
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(units.len());
    let mut placed = vec![false; units.len()];
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        placed[i] = true;
        for &k in &dependents[i] {
            indegree[k] -= 1;
            if indegree[k] == 0 {
                ready.push(Reverse(k));
            }
        }
    }
    let in_cycle: Vec<bool> = placed.iter().map(|p| !p).collect();
    order.extend((0..units.len()).filter(|&i| in_cycle[i]));
    (order, in_cycle)
}

/// Indices of `seeds` plus everything they transitively depend on.
pub(crate) fn with_dependencies(units: &[Unit], seeds: &[usize]) -> Vec<usize> {
    let index: HashMap<&str, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.name(), i))
        .collect();
    closure(units.len(), seeds, |i| {
        units[i]
            .plan
            .depends_on
            .iter()
            .filter_map(|d| index.get(d.service.as_str()).copied())
            .collect()
    })
}

/// Indices of `seeds` plus everything that transitively depends on them.
pub(crate) fn with_dependents(units: &[Unit], seeds: &[usize]) -> Vec<usize> {
    closure(units.len(), seeds, |i| dependents_of(units, i))
}

/// Units whose plan names unit `i` as a dependency.
pub(crate) fn dependents_of(units: &[Unit], i: usize) -> Vec<usize> {
    let name = units[i].name();
    units
        .iter()
        .enumerate()
        .filter(|(j, u)| *j != i && u.plan.depends_on.iter().any(|d| d.service == name))
        .map(|(j, _)| j)
        .collect()
}

/// Closure of `seeds` over `next`, in plan (index) order, without duplicates.
fn closure(n: usize, seeds: &[usize], next: impl Fn(usize) -> Vec<usize>) -> Vec<usize> {
    let mut seen = vec![false; n];
    let mut out = Vec::new();
    let mut queue: Vec<usize> = seeds.iter().copied().filter(|&i| i < n).collect();
    while let Some(i) = queue.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        out.push(i);
        queue.extend(next(i).into_iter().filter(|&j| !seen[j]));
    }
    out.sort_unstable();
    out
}

/// Why a dependency that is going down breaks its dependents.
fn going_down(name: &str, why: &StopWhy) -> String {
    match why {
        StopWhy::User => format!("dependency {name} stopped"),
        StopWhy::Cascade(_) => format!("dependency {name} blocked"),
        StopWhy::Remove => format!("dependency {name} removed"),
        StopWhy::Restart => format!("dependency {name} restarting"),
        StopWhy::Unhealthy(_) => format!("dependency {name} unhealthy"),
    }
}

/// Whether dependency `dep` (named `name`; `None` when not in the plan) satisfies `cond`.
pub(crate) fn check(dep: Option<&Unit>, name: &str, cond: DepCondition, mode: Mode) -> Check {
    let Some(d) = dep else {
        return Check::Broken(format!("dependency {name} is not configured"));
    };
    if d.removed {
        return Check::Broken(format!("dependency {name} removed"));
    }
    let pending = || Check::Pending(format!("waiting for {name}"));
    // `Completed` is latched by a clean exit, so a one-shot under `always` keeps satisfying it
    // through its policy restarts.
    let completed_or = |otherwise: Check| {
        if cond == DepCondition::Completed && d.succeeded {
            Check::Satisfied
        } else {
            otherwise
        }
    };
    match &d.state {
        State::Running {
            pending_stop: Some(why),
        } => Check::Broken(going_down(name, why)),
        // Still inside its settle window: not started yet.
        State::Running { pending_stop: None } if d.up_at.is_some() => completed_or(pending()),
        State::Running { pending_stop: None } if d.ready.awaiting.is_some() => completed_or(
            Check::Pending(format!("waiting for {name} to send READY=1")),
        ),
        State::Running { pending_stop: None } => match cond {
            DepCondition::Started => Check::Satisfied,
            DepCondition::Healthy if d.healthy => Check::Satisfied,
            // Say what the probes report, so a dependency that never gets healthy is visible.
            DepCondition::Healthy => Check::Pending(match d.probe.failures() {
                Some(f) => format!("waiting for {name} to become healthy ({f})"),
                None => format!("waiting for {name} to become healthy"),
            }),
            DepCondition::Completed => completed_or(pending()),
        },
        State::Completed => Check::Satisfied,
        // A restart by request is on its way back up: dependents wait, or are left running.
        State::Starting
        | State::Waiting
        | State::Stopping {
            why: StopWhy::Restart,
            ..
        } => completed_or(pending()),
        State::Stopping { why, .. } => Check::Broken(going_down(name, why)),
        State::Backoff { .. } => completed_or(match mode {
            Mode::Start => pending(),
            // It crashed while the dependent ran: that is exactly what the cascade is for.
            Mode::Keep => Check::Broken(format!("dependency {name} exited")),
        }),
        State::Failed => Check::Broken(format!("dependency {name} failed")),
        State::Stopped => Check::Broken(format!("dependency {name} stopped")),
        State::Blocked => Check::Broken(format!("dependency {name} blocked")),
    }
}
