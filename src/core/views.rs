//! What the core tells about its units: deadlines, views, whether a selection settled, why
//! starts failed, and whether anything still runs.

use super::*;

impl Core {
    /// The earliest time at which a `Tick` has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.units
            .iter()
            .filter_map(Unit::deadline)
            .chain(self.book.deadline())
            .chain(self.cron_deadline())
            .chain(self.drains.deadline())
            .chain(self.readiness_deadline())
            .min()
    }

    /// Every unit, in plan order.
    pub fn units(&self) -> Vec<UnitView> {
        self.units
            .iter()
            .map(|u| self.view_of(u))
            .chain(self.job_views())
            .collect()
    }

    /// The name of every unit, in the order of `units`, without building their views.
    pub fn unit_names(&self) -> Vec<String> {
        self.units
            .iter()
            .map(|u| u.plan.name.clone())
            .chain(self.job_names())
            .collect()
    }

    /// True when none of `units` (all when `None`) is still on its way up
    /// (`Waiting` on a dependency that may still come up, `Starting`, inside its settle
    /// window, or running with a health check that has not passed yet).
    /// Cron jobs never hold this up: a run is not something to wait for.
    pub fn settled(&self, units: Option<&[UnitId]>) -> bool {
        let selected = match units {
            None => self.all(),
            Some(names) => self.resolve(names),
        };
        // A deployment (or the old instance it still drains) is a restart under way.
        if selected
            .iter()
            .any(|&i| self.book.busy(&self.units[i].plan.name))
        {
            return false;
        }
        // Waiting only survives a reconcile while some dependency is pending (a broken one
        // makes it Blocked), so Waiting always means "may still come up". A restart by
        // request is on its way up as well. A unit failing its start-up (`failing_start`)
        // has settled, badly, whatever its restart is doing; so has one waiting on it.
        let failing = self.failing_start_closure();
        !selected.into_iter().any(|i| {
            let u = &self.units[i];
            if failing[i] {
                return false;
            }
            u.up_at.is_some()
                || u.ready.awaiting.is_some()
                || (u.plan.health.is_some()
                    && u.state == State::Running { pending_stop: None }
                    && !u.healthy)
                || matches!(
                    u.state,
                    State::Starting
                        | State::Waiting
                        | State::Stopping {
                            why: StopWhy::Restart | StopWhy::Unhealthy(_),
                            ..
                        }
                )
        })
    }

    /// Units failing their start-up (see `Unit::failing_start`) and why, among `units` (all
    /// when `None`): what a start's verdict reports for them.
    pub fn failing_starts(&self, units: Option<&[UnitId]>) -> Vec<(UnitId, String)> {
        let selected = match units {
            None => self.all(),
            Some(names) => self.resolve(names),
        };
        selected
            .into_iter()
            .filter_map(|i| {
                let u = &self.units[i];
                let why = u.failing_start.as_ref()?;
                Some((
                    u.plan.name.clone(),
                    format!(
                        "failed during start-up: {why}; restarting (restart {})",
                        u.consecutive
                    ),
                ))
            })
            .collect()
    }

    /// By index: the unit is failing its start-up, or waits on a dependency that is (so it
    /// cannot come up before that one does).
    pub(super) fn failing_start_closure(&self) -> Vec<bool> {
        let mut failing: Vec<bool> = self
            .units
            .iter()
            .map(|u| u.failing_start.is_some())
            .collect();
        // Dependencies come first in `order`; a cycle member never starts anyway.
        for &i in &self.order {
            let u = &self.units[i];
            if u.state == State::Waiting
                && u.plan
                    .depends_on
                    .iter()
                    .filter_map(|d| self.find(&d.service))
                    .any(|d| failing[d])
            {
                failing[i] = true;
            }
        }
        failing
    }

    /// True when no unit has a process (all stopped, completed, failed or blocked).
    pub fn idle(&self) -> bool {
        !self.units.iter().any(Unit::is_live)
            && self.book.idle()
            && !self.jobs_live()
            && self.drains.is_empty()
    }

    /// The view of one unit, if it is known.
    pub fn unit(&self, name: &str) -> Option<UnitView> {
        match self.index.get(name) {
            Some(&i) => Some(self.view_of(&self.units[i])),
            None => self.job_views().find(|v| v.name == name),
        }
    }

    /// A unit's view; `stopping` while its main process ended and the rest is drained.
    pub(super) fn view_of(&self, u: &Unit) -> UnitView {
        let mut view = u.view();
        if view.state == StateKind::Running && self.drains.contains(&u.instance) {
            view.state = StateKind::Stopping;
        }
        view
    }
}
