//! Units added to and dropped from a running plan one at a time (`sysg run` and the stop of
//! an ad-hoc unit). Both are a reload of the current plan with one difference, so they share
//! every rule of a reload: unchanged units are untouched, a new unit starts, a dropped live
//! unit is stopped (after its dependents) and forgotten once its process is gone.

use std::time::Instant;

use super::{Action, Core, UnitId, UnitPlan};

impl Core {
    /// The plans of every unit still in the plan, in plan order.
    fn current_plan(&self) -> Vec<UnitPlan> {
        self.units
            .iter()
            .filter(|u| !u.removed)
            .map(|u| u.plan.clone())
            .collect()
    }

    pub(super) fn add(&mut self, now: Instant, plan: UnitPlan, out: &mut Vec<Action>) {
        let mut next = self.current_plan();
        next.push(plan);
        self.reload(now, next, out);
    }

    pub(super) fn forget(&mut self, now: Instant, names: &[UnitId], out: &mut Vec<Action>) {
        let next: Vec<UnitPlan> = self
            .current_plan()
            .into_iter()
            .filter(|p| !names.contains(&p.name))
            .collect();
        self.reload(now, next, out);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::{Action, Core, Event, Request, StateKind, UnitPlan};
    use crate::core::test_support::unit_plan;
    use crate::spec::ExitStatus;
    use crate::spec::UnitSpec;

    fn plan(name: &str) -> UnitPlan {
        unit_plan(Arc::new(UnitSpec::new(
            "adhoc",
            name,
            vec!["/bin/sleep".into(), "100".into()],
        )))
    }

    fn starts(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { unit, .. } => Some(unit.clone()),
                _ => None,
            })
            .collect()
    }

    fn state(core: &Core, name: &str) -> Option<StateKind> {
        core.unit(name).map(|u| u.state)
    }

    #[test]
    fn add_starts_only_the_new_unit() {
        let t = Instant::now();
        let mut core = Core::new(vec![plan("a")]);
        let acts = core.handle(t, Event::Request(Request::Start(None)));
        assert_eq!(starts(&acts), vec!["a"]);
        core.handle(
            t,
            Event::Started {
                unit: "a".into(),
                pid: 10,
            },
        );
        let acts = core.handle(t, Event::Request(Request::Add(plan("b"))));
        assert_eq!(starts(&acts), vec!["b"]);
        // `a` keeps its process: no signal went out.
        assert!(!acts.iter().any(|a| matches!(a, Action::Signal { .. })));
        assert_eq!(core.unit("a").and_then(|u| u.pid), Some(10));
    }

    #[test]
    fn adding_an_existing_name_changes_nothing() {
        let t = Instant::now();
        let mut core = Core::new(vec![plan("a")]);
        let acts = core.handle(t, Event::Request(Request::Add(plan("a"))));
        assert!(starts(&acts).is_empty());
        assert_eq!(state(&core, "a"), Some(StateKind::Stopped));
    }

    #[test]
    fn forget_drops_a_finished_unit_at_once() {
        let t = Instant::now();
        let mut core = Core::new(Vec::new());
        core.handle(t, Event::Request(Request::Add(plan("b"))));
        core.handle(
            t,
            Event::Started {
                unit: "b".into(),
                pid: 11,
            },
        );
        core.handle(
            t,
            Event::Exited {
                unit: "b".into(),
                pid: 11,
                status: ExitStatus::Code(3),
            },
        );
        assert_eq!(state(&core, "b"), Some(StateKind::Failed));
        core.handle(t, Event::Request(Request::Forget(vec!["b".into()])));
        assert_eq!(state(&core, "b"), None);
    }

    #[test]
    fn forget_stops_a_live_unit_then_drops_it() {
        let t = Instant::now();
        let mut core = Core::new(Vec::new());
        core.handle(t, Event::Request(Request::Add(plan("b"))));
        core.handle(
            t,
            Event::Started {
                unit: "b".into(),
                pid: 11,
            },
        );
        let acts = core.handle(t, Event::Request(Request::Forget(vec!["b".into()])));
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::Signal { unit, signal: 15 } if unit == "b")));
        assert_eq!(state(&core, "b"), Some(StateKind::Stopping));
        core.handle(
            t + Duration::from_millis(5),
            Event::Exited {
                unit: "b".into(),
                pid: 11,
                status: ExitStatus::Signal(15),
            },
        );
        assert_eq!(state(&core, "b"), None);
        assert!(core.idle());
    }
}
