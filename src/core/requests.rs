//! Client requests to the unit state machine: start, stop and restart (with what they depend
//! on, or what depends on them) and a reload's new plan.

use super::*;

impl Core {
    pub(super) fn request(&mut self, now: Instant, request: Request, out: &mut Vec<Action>) {
        match request {
            Request::Start(names) => {
                let (named, explicit) = match names {
                    None => (self.all(), false),
                    Some(names) => (self.resolve(&names), true),
                };
                for i in deps::with_dependencies(&self.units, &named) {
                    let explicit = explicit && named.contains(&i);
                    self.want(now, i, explicit);
                }
            }
            Request::Stop(names) => {
                let seeds = match names {
                    None => self.all(),
                    Some(names) => self.resolve(&names),
                };
                for i in deps::with_dependents(&self.units, &seeds) {
                    self.stop_by_user(now, i, out);
                }
            }
            Request::Restart(names) => {
                let named = match names {
                    None => self.all(),
                    Some(names) => self.resolve(&names),
                };
                for &i in &named {
                    // rolling / blue_green: the new instance starts beside the running one.
                    if !deploy::begin(&mut self.book, now, &mut self.units[i], None, out) {
                        self.restart_one(now, i, out);
                    }
                }
                // Like a start, a restart brings up what the unit needs.
                for i in deps::with_dependencies(&self.units, &named) {
                    if !named.contains(&i) {
                        self.want(now, i, false);
                    }
                }
            }
            Request::Reload(plan) => self.reload(now, plan, out),
            Request::Add(plan) => self.add(now, plan, out),
            Request::Forget(names) => self.forget(now, &names, out),
            Request::ReloadJobs(_) => {}
        }
    }

    /// Make unit `i` wanted. `explicit` (named in a start request) also re-runs a completed
    /// unit and cuts a backoff short; a dependency pulled in implicitly keeps those as they are.
    pub(super) fn want(&mut self, now: Instant, i: usize, explicit: bool) {
        let u = &mut self.units[i];
        if u.removed {
            return;
        }
        u.wanted = true;
        match &mut u.state {
            State::Stopped | State::Failed | State::Blocked => u.fresh(now),
            State::Completed | State::Backoff { .. } if explicit => u.fresh(now),
            State::Running { pending_stop } if *pending_stop == Some(StopWhy::User) => {
                *pending_stop = None;
                u.reason = None;
            }
            State::Stopping { why, .. } if *why == StopWhy::User => {
                *why = StopWhy::Restart;
                // A re-run by request must complete again before `Completed` holds.
                u.succeeded = false;
            }
            _ => {}
        }
    }

    pub(super) fn stop_by_user(&mut self, now: Instant, i: usize, out: &mut Vec<Action>) {
        let u = &mut self.units[i];
        if u.removed {
            return;
        }
        u.wanted = false;
        match &mut u.state {
            State::Running { pending_stop } => {
                // The signal itself goes out in reconcile, once the dependents have exited.
                *pending_stop = Some(StopWhy::User);
                u.reason = Some("stopping after its dependents".to_string());
            }
            State::Starting => u.begin_stop(now, StopWhy::User, out),
            State::Stopping { why, .. } => *why = StopWhy::User,
            State::Waiting | State::Blocked | State::Backoff { .. } => {
                report(
                    out,
                    &u.plan.name,
                    ReportKind::Stopped,
                    "stopped".to_string(),
                );
                notify(
                    out,
                    &u.plan.name,
                    NoticeKind::Stop,
                    None,
                    None,
                    "stopped".to_string(),
                );
                u.set(now, State::Stopped, None);
            }
            State::Stopped | State::Completed | State::Failed => {}
        }
    }

    pub(super) fn restart_one(&mut self, now: Instant, i: usize, out: &mut Vec<Action>) {
        let u = &mut self.units[i];
        if u.removed {
            return;
        }
        u.wanted = true;
        u.consecutive = 0;
        match &mut u.state {
            State::Running { .. } => {
                u.succeeded = false;
                // No waiting for dependents: they are left running across the restart.
                u.begin_stop(now, StopWhy::Restart, out);
            }
            // A start in flight already brings up a fresh process.
            State::Starting => {}
            State::Stopping { why, .. } => {
                *why = StopWhy::Restart;
                u.succeeded = false;
            }
            _ => u.fresh(now),
        }
    }

    pub(super) fn reload(&mut self, now: Instant, plan: Vec<UnitPlan>, out: &mut Vec<Action>) {
        let plan = dedup(plan);
        let new_names: HashSet<&str> = plan.iter().map(|p| p.name.as_str()).collect();
        for u in &mut self.units {
            if !u.removed && !new_names.contains(u.plan.name.as_str()) {
                u.removed = true;
                u.wanted = false;
                match &mut u.state {
                    // Waits for its dependents like any stop (they are stopped by the cascade).
                    State::Running { pending_stop } => *pending_stop = Some(StopWhy::Remove),
                    State::Starting => u.begin_stop(now, StopWhy::Remove, out),
                    State::Stopping { why, .. } => *why = StopWhy::Remove,
                    _ => {}
                }
            }
        }
        let mut old: Vec<Option<Unit>> = std::mem::take(&mut self.units)
            .into_iter()
            .map(Some)
            .collect();
        let old_index: HashMap<String, usize> = old
            .iter()
            .enumerate()
            .filter_map(|(i, u)| u.as_ref().map(|u| (u.plan.name.clone(), i)))
            .collect();
        let mut next = Vec::with_capacity(plan.len());
        for p in plan {
            let existing = old_index.get(&p.name).and_then(|&i| old[i].take());
            match existing {
                Some(mut u) => {
                    if u.removed {
                        resurrect(&mut u);
                    }
                    if u.plan != p {
                        change(now, &mut self.book, &mut u, p, out);
                    }
                    next.push(u);
                }
                None => {
                    let mut u = Unit::new(p);
                    u.wanted = true;
                    u.fresh(now);
                    next.push(u);
                }
            }
        }
        for u in old.into_iter().flatten() {
            if u.is_live() {
                next.push(u);
            } else {
                report(
                    out,
                    &u.plan.name,
                    ReportKind::Stopped,
                    "removed from the plan".to_string(),
                );
            }
        }
        self.units = next;
        self.rebuild();
    }
}

/// A unit removed by an earlier reload is back in the plan before its process was gone.
fn resurrect(u: &mut Unit) {
    u.removed = false;
    u.wanted = true;
    match &mut u.state {
        State::Running { pending_stop } if *pending_stop == Some(StopWhy::Remove) => {
            *pending_stop = None;
            u.reason = None;
        }
        State::Stopping { why, .. } if *why == StopWhy::Remove => {
            *why = StopWhy::Restart;
            u.succeeded = false;
        }
        _ => {}
    }
}

/// Swap in a changed plan; a wanted unit is restarted so the new spec takes effect (side by
/// side when its deployment strategy says so).
fn change(
    now: Instant,
    book: &mut deploy::Book,
    u: &mut Unit,
    plan: UnitPlan,
    out: &mut Vec<Action>,
) {
    if u.wanted && deploy::begin(book, now, u, Some(plan.clone()), out) {
        // The running process keeps its plan until the new one is promoted beside it.
        return;
    }
    if u.wanted {
        u.consecutive = 0;
        match &u.state {
            // Stop before swapping the plan: the old process gets the old spec's stop signal.
            State::Running { pending_stop: None } | State::Starting => {
                u.succeeded = false;
                u.begin_stop(now, StopWhy::Restart, out);
            }
            // Already going down; the way back up (restart or recovery) uses the new plan.
            State::Running { .. } | State::Stopping { .. } => {}
            State::Backoff { .. } | State::Failed | State::Completed => u.fresh(now),
            State::Waiting | State::Blocked | State::Stopped => {}
        }
    }
    let health_changed = u.plan.health != plan.health;
    u.plan = plan;
    if health_changed {
        health::replanned(now, u);
    }
}
