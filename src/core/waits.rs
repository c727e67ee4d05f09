//! What waiting clients wait for (`Goal`), when a goal is met, what the client is told, and
//! which ad-hoc units are forgotten once they are down. Checked at the end of each turn of the
//! runtime's loop (`ClientEvent::TurnEnded`), after the state was written; the forgetting comes
//! once the answers went out (`ClientEvent::Answered`), so that a waited run's answer still
//! carries its unit's report.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::supervision::{reply, Answer, ClientId, Supervision};
use super::{Action, Event, Request, StateKind, UnitId};

/// What a pending client is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub enum Goal {
    /// The units settled (started, failed, or blocked) and none is mid-stop.
    Settled(Option<Vec<UnitId>>),
    /// None of the units has a process (and with `None`, no spawned child is left).
    Down(Option<Vec<UnitId>>),
    /// These spawned children are gone.
    ChildrenGone(Vec<String>),
    /// An ad-hoc unit settled (`sysg run`).
    Ran(UnitId),
    /// An ad-hoc unit finished: completed, failed, stopped or gone (`sysg run --wait`).
    Finished(UnitId),
    /// Like `Settled`, and no deployment of the units is under way; deployments begun after
    /// `since` (`Core::deploy_seq`) that failed make the answer an error.
    Deployed {
        units: Option<Vec<UnitId>>,
        since: u64,
        /// A reload's changes, added to the answer's report as `changes`.
        changes: Option<serde_json::Value>,
    },
    /// `sysg reload`: each notify service signalled ended its reload (its count of reloads
    /// ended, `Core::reload_outcome`, passed the one recorded), and no reload command runs.
    Reloaded {
        notify: Vec<(UnitId, u64)>,
        /// Services whose reload command still runs.
        commands: Vec<UnitId>,
        /// What was done, for the answer.
        services: serde_json::Value,
        /// What failed so far.
        problems: Vec<String>,
    },
}

/// A client parked until its goal is met.
#[derive(Debug, Clone)]
pub(super) struct Waiter {
    pub(super) client: ClientId,
    pub(super) goal: Goal,
}

/// The name of a state as `status` shows it (`running`, `backoff`, ...).
fn state_name(state: StateKind) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A state a start may end in without an error.
fn good(state: StateKind) -> bool {
    matches!(
        state,
        StateKind::Running | StateKind::Completed | StateKind::Scheduled
    )
}

impl Supervision {
    /// Whether `goal` is met now.
    pub fn met(&self, goal: &Goal) -> bool {
        let units = self.core.units();
        let selected = |name: &str, sel: &Option<Vec<UnitId>>| {
            sel.as_ref().is_none_or(|v| v.iter().any(|n| n == name))
        };
        match goal {
            Goal::Settled(sel) => {
                self.core.settled(sel.as_deref())
                    && !units
                        .iter()
                        .any(|u| selected(&u.name, sel) && u.state == StateKind::Stopping)
            }
            Goal::ChildrenGone(keys) => keys.iter().all(|k| self.spawn.child(k).is_none()),
            Goal::Down(sel) if self.spawn.any_stopping(sel.as_deref()) => false,
            Goal::Down(None) if self.spawn.any_alive(None) => false,
            Goal::Down(sel) => {
                !self.core.deploying(sel.as_deref())
                    && !units.iter().any(|u| {
                        selected(&u.name, sel)
                            && matches!(
                                u.state,
                                StateKind::Running | StateKind::Starting | StateKind::Stopping
                            )
                    })
            }
            Goal::Deployed { units: sel, .. } => {
                self.met(&Goal::Settled(sel.clone())) && !self.core.deploying(sel.as_deref())
            }
            Goal::Ran(unit) => self.met(&Goal::Settled(Some(vec![unit.clone()]))),
            Goal::Finished(unit) => self.adhoc_finished(unit),
            Goal::Reloaded {
                notify, commands, ..
            } => {
                commands.is_empty()
                    && notify.iter().all(|(name, before)| {
                        self.core
                            .reload_outcome(name)
                            .is_none_or(|(ended, _)| ended > *before)
                    })
            }
        }
    }

    /// The notify services among `signalled` wait for their reload to end (`Event::ReloadSent`);
    /// returns them with their count of reloads ended so far. A service without a process has
    /// nothing to wait for.
    pub(super) fn reload_sent(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        signalled: Vec<UnitId>,
        out: &mut Vec<Action>,
    ) -> Vec<(UnitId, u64)> {
        let mut notify = Vec::new();
        for name in signalled {
            let running = self.core.unit(&name).is_some_and(|u| u.pid.is_some());
            if !running || self.core.notify_view(&name).is_none() {
                continue;
            }
            let before = self
                .core
                .reload_outcome(&name)
                .map_or(0, |(ended, _)| ended);
            let event = Event::ReloadSent { unit: name.clone() };
            out.extend(self.core.handle_at(now, wall, event));
            notify.push((name, before));
        }
        notify
    }

    /// A reload command of `client`'s `sysg reload` ended.
    pub(super) fn reload_command_done(
        &mut self,
        client: ClientId,
        service: &str,
        error: Option<String>,
    ) {
        let Some(w) = self.waiters.iter_mut().find(|w| w.client == client) else {
            return;
        };
        if let Goal::Reloaded {
            commands, problems, ..
        } = &mut w.goal
        {
            if let Some(i) = commands.iter().position(|c| c == service) {
                commands.remove(i);
            }
            if let Some(e) = error {
                problems.push(format!("`{service}`: reload command {e}"));
            }
        }
    }

    /// Why the selected units (all when `None`) are not where a start should leave them: one
    /// line for each that is not running, completed or scheduled, or whose start failed.
    pub fn problems(&self, sel: Option<&[UnitId]>) -> Vec<String> {
        let failing = self.core.failing_starts(sel);
        self.core
            .units()
            .into_iter()
            .filter(|u| sel.is_none_or(|v| v.contains(&u.name)))
            .filter_map(|u| {
                if let Some((_, why)) = failing.iter().find(|(n, _)| *n == u.name) {
                    return Some(format!("{} {why}", u.name));
                }
                if good(u.state) {
                    return None;
                }
                Some(format!(
                    "{} is {}{}",
                    u.name,
                    state_name(u.state),
                    u.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ))
            })
            .collect()
    }

    /// Answer every waiting client whose goal is met, in the order they came.
    pub(super) fn answer_waiters(&mut self, out: &mut Vec<Action>) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            if !self.met(&w.goal) {
                self.waiters.push(w);
                continue;
            }
            let answer = self.answer(&w.goal);
            reply(out, w.client, answer);
        }
    }

    /// What a client whose goal is met is told.
    fn answer(&mut self, goal: &Goal) -> Answer {
        match goal {
            Goal::Settled(sel) => Answer::Report {
                problems: self.problems(sel.as_deref()),
                changes: None,
            },
            Goal::Down(_) | Goal::ChildrenGone(_) => Answer::Report {
                problems: Vec::new(),
                changes: None,
            },
            Goal::Ran(unit) => self.run_answer(unit, false),
            Goal::Finished(unit) => self.run_answer(unit, true),
            Goal::Reloaded {
                notify,
                services,
                problems,
                ..
            } => {
                let mut problems = problems.clone();
                for (name, _) in notify {
                    if let Some((_, Some(err))) = self.core.reload_outcome(name) {
                        problems.push(format!("`{name}`: {err}"));
                    }
                }
                Answer::Reloaded {
                    services: services.clone(),
                    problems,
                }
            }
            Goal::Deployed {
                units: sel,
                since,
                changes,
            } => {
                let failed = self.core.deploy_failures(sel.as_deref(), *since);
                let problems = if failed.is_empty() {
                    self.problems(sel.as_deref())
                } else {
                    failed
                };
                Answer::Report {
                    problems,
                    changes: changes.clone(),
                }
            }
        }
    }

    /// The answer to a `run`: its unit's report, an error when it did not start (without
    /// `wait`; with it, the unit's end is the answer whatever it was).
    fn run_answer(&mut self, unit: &str, waited: bool) -> Answer {
        let Some(view) = self.core.unit(unit) else {
            return Answer::Refused(format!("`{unit}` was removed before it finished"));
        };
        if waited {
            // Its exit status goes back in this answer; nothing else needs the unit.
            self.forget_when_down(Some(&[unit.to_string()]));
        }
        let problem = (!waited && !good(view.state)).then(|| {
            format!(
                "{unit} is {}{}",
                state_name(view.state),
                view.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        });
        Answer::Run {
            unit: unit.to_string(),
            problem,
        }
    }

    /// True when the unit has nothing more to do on its own: it completed, failed for good,
    /// was stopped, or is gone.
    fn adhoc_finished(&self, unit: &str) -> bool {
        self.core.unit(unit).is_none_or(|u| {
            matches!(
                u.state,
                StateKind::Completed | StateKind::Failed | StateKind::Stopped | StateKind::Blocked
            )
        })
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

    /// Forget the ad-hoc units marked by a stop or a wait that are down now.
    pub(super) fn forget_down_adhoc(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<Action>,
    ) {
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
        let event = Event::Request(Request::Forget(down));
        out.extend(self.core.handle_at(now, wall, event));
        out.push(Action::Persist);
    }
}
