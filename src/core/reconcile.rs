//! The reconcile pass: after every event, bring each unit in line with its dependencies
//! (start what may start, block what cannot, cascade-stop what lost a dependency, deliver
//! stops whose dependents are gone).

use super::*;

impl Core {
    /// Bring every unit in line with its dependencies: start what may start, block what cannot,
    /// cascade-stop what lost a dependency, and deliver stops whose dependents are gone.
    pub(super) fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        // Walking in start order settles everything in one pass; the bounded repeat is a
        // safety net for units behind a cycle, which are walked last.
        for _ in 0..self.units.len() + 2 {
            let mut changed = false;
            for pos in 0..self.order.len() {
                let i = self.order[pos];
                changed |= self.step(now, i, out);
            }
            if !changed {
                break;
            }
        }
    }

    /// One reconcile step for unit `i`; true when it changed state.
    pub(super) fn step(&mut self, now: Instant, i: usize, out: &mut Vec<Action>) -> bool {
        let u = &self.units[i];
        match &u.state {
            State::Waiting | State::Blocked if u.wanted && !u.removed => {
                let verdict = self.evaluate(i, Mode::Start);
                let u = &mut self.units[i];
                match verdict {
                    Check::Satisfied => {
                        u.start(now, out);
                        true
                    }
                    Check::Pending(reason) => {
                        // A blocked unit keeps saying why it was blocked until it can start.
                        if u.state == State::Waiting {
                            u.reason = Some(reason);
                        }
                        false
                    }
                    Check::Broken(reason) => {
                        if u.state == State::Blocked && u.reason.as_deref() == Some(&reason) {
                            return false;
                        }
                        report(
                            out,
                            &u.plan.name,
                            ReportKind::DependencyFailed,
                            reason.clone(),
                        );
                        u.set(now, State::Blocked, Some(reason));
                        true
                    }
                }
            }
            State::Running { pending_stop: None } | State::Starting => {
                let Check::Broken(reason) = self.evaluate(i, Mode::Keep) else {
                    return false;
                };
                let u = &mut self.units[i];
                report(
                    out,
                    &u.plan.name,
                    ReportKind::DependencyFailed,
                    format!("stopping: {reason}"),
                );
                if u.state == State::Starting {
                    u.begin_stop(now, StopWhy::Cascade(reason), out);
                } else {
                    u.state = State::Running {
                        pending_stop: Some(StopWhy::Cascade(reason.clone())),
                    };
                    u.reason = Some(reason);
                }
                true
            }
            State::Running {
                pending_stop: Some(why),
            } => {
                let why = why.clone();
                // Dependents go first; inside a cycle (only reachable through adoption) that
                // order does not exist and waiting would deadlock, so cycle members go at once.
                let waiting = !self.units[i].in_cycle
                    && deps::dependents_of(&self.units, i)
                        .into_iter()
                        .any(|j| self.units[j].is_live());
                if waiting {
                    return false;
                }
                self.units[i].begin_stop(now, why, out);
                true
            }
            _ => false,
        }
    }

    /// Combined verdict over all dependencies of unit `i`: any broken one wins, then any
    /// pending one.
    pub(super) fn evaluate(&self, i: usize, mode: Mode) -> Check {
        let u = &self.units[i];
        if u.in_cycle {
            return Check::Broken("dependency cycle".to_string());
        }
        let mut pending = None;
        for d in &u.plan.depends_on {
            let dep = self.find(&d.service).map(|j| &self.units[j]);
            match deps::check(dep, &d.service, d.condition, mode) {
                Check::Broken(reason) => return Check::Broken(reason),
                Check::Pending(reason) => {
                    pending.get_or_insert(reason);
                }
                Check::Satisfied => {}
            }
        }
        pending.map_or(Check::Satisfied, Check::Pending)
    }
}
