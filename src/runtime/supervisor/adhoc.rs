//! The supervisor's side of `sysg run`: add an ad-hoc unit to the running core, answer when
//! it settled or finished, and forget it once it is down after a stop or a wait.

use std::sync::mpsc::Sender;

use super::{to_json, Goal, Supervisor, Waiter};
use crate::control::protocol::{Response, RunReport, RunRequest};
use crate::core::{Event, Request, StateKind, UnitId};
use crate::runtime::adhoc::{unit_name, unit_plan};

impl Supervisor {
    /// A `run` request: name the unit, add it to the core, and park the client until the
    /// unit settled (or finished, with `wait`).
    pub(super) fn on_run(&mut self, req: RunRequest, reply: Sender<Response>) {
        // Names of configured services (cron jobs included) and of every unit the core still
        // tracks, including removed ones that are still stopping.
        let mut taken: Vec<String> = self.core.units().into_iter().map(|u| u.name).collect();
        taken.extend(self.config.services.iter().map(|s| s.name.clone()));
        let planned = unit_name(req.name.as_deref(), &req.argv, &taken)
            .and_then(|name| unit_plan(&self.config.project, &name, &req));
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Response::err(e.to_string(), Default::default()));
                return;
            }
        };
        let name = plan.name.clone();
        tracing::info!(unit = %name, command = ?req.argv, "adding an ad-hoc unit");
        self.adhoc.insert(name.clone(), plan.clone());
        self.queue.push_back(Event::Request(Request::Add(plan)));
        let goal = if req.wait {
            Goal::Finished(name)
        } else {
            Goal::Ran(name)
        };
        self.waiters.push(Waiter { goal, reply });
    }

    /// Remember which of `services` (all when `None`) are ad-hoc: they are forgotten once
    /// they are down, so a stopped ad-hoc unit leaves no trace.
    pub(super) fn forget_when_down(&mut self, services: Option<&[UnitId]>) {
        let adhoc: Vec<UnitId> = self
            .adhoc
            .keys()
            .filter(|n| services.is_none_or(|s| s.contains(n)))
            .cloned()
            .collect();
        for n in adhoc {
            if !self.forget.contains(&n) {
                self.forget.push(n);
            }
        }
    }

    /// True when the unit has nothing more to do on its own: it completed, failed for good,
    /// was stopped, or is gone.
    pub(super) fn adhoc_finished(&self, unit: &str) -> bool {
        self.core.unit(unit).is_none_or(|u| {
            matches!(
                u.state,
                StateKind::Completed | StateKind::Failed | StateKind::Stopped | StateKind::Blocked
            )
        })
    }

    /// The answer to a `run` request whose goal was met.
    pub(super) fn run_response(&mut self, goal: &Goal, unit: &str) -> Response {
        let report = self.status();
        let Some(service) = report.services.into_iter().find(|s| s.name == unit) else {
            return Response::err(
                format!("`{unit}` was removed before it finished"),
                Default::default(),
            );
        };
        let waited = matches!(goal, Goal::Finished(_));
        if waited {
            // Its exit status goes back in this answer; nothing else needs the unit.
            self.forget_when_down(Some(&[unit.to_string()]));
        }
        let ok = waited || service.is_good();
        let failure = (!ok).then(|| {
            format!(
                "{unit} is {}{}",
                serde_json::to_value(service.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                service
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        });
        let data = to_json(&RunReport {
            project: self.config.project.clone(),
            unit: unit.to_string(),
            service,
        });
        match failure {
            None => Response::ok(data),
            Some(msg) => Response::err(msg, data),
        }
    }

    /// Forget the ad-hoc units marked by a stop or a wait that are down now.
    pub(super) fn forget_down_adhoc(&mut self) {
        if self.forget.is_empty() {
            return;
        }
        let (down, live): (Vec<UnitId>, Vec<UnitId>) =
            std::mem::take(&mut self.forget).into_iter().partition(|n| {
                self.core.unit(n).is_none_or(|u| {
                    !matches!(
                        u.state,
                        StateKind::Running | StateKind::Starting | StateKind::Stopping
                    )
                })
            });
        self.forget = live;
        if down.is_empty() {
            return;
        }
        for n in &down {
            self.adhoc.remove(n);
        }
        self.queue.push_back(Event::Request(Request::Forget(down)));
        self.drain_queue();
        self.dirty.mark();
    }
}
