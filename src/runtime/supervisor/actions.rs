//! Carrying out the core's actions: the backend (starts, signals, timers), probes, hooks,
//! deployment commands, the exit history, answers to clients; and turning backend events into
//! the core's events. A backend's answer (a pid, a refusal) goes back to the core as an event.

use super::{setup, Supervisor, READY};
use crate::backend::BackendEvent;
use crate::control::protocol::Response;
use std::sync::Arc;

use crate::core::{Action, ClientId, Event, Input, ReportKind, UnitId};
use crate::spec::UnitSpec;

impl Supervisor {
    /// Carry out one turn's actions in order; each run of consecutive starts goes to the
    /// backend in one call, so it can overlap them.
    pub(super) fn execute_all(&mut self, actions: Vec<Action>) {
        let mut actions = actions.into_iter().peekable();
        while let Some(action) = actions.next() {
            let Action::Start { unit, spec } = action else {
                self.execute(action);
                continue;
            };
            let mut run = vec![(unit, spec)];
            while let Some(Action::Start { unit, spec }) =
                actions.next_if(|a| matches!(a, Action::Start { .. }))
            {
                run.push((unit, spec));
            }
            self.execute_starts(run);
        }
    }

    /// Start the units of `run`; the core gets each answer (a pid, a failure), in order.
    fn execute_starts(&mut self, run: Vec<(UnitId, Arc<UnitSpec>)>) {
        let specs: Vec<UnitSpec> = run.iter().map(|(_, spec)| UnitSpec::clone(spec)).collect();
        let results = self.backend.start_many(&specs);
        for ((unit, _), result) in run.into_iter().zip(results) {
            let event = match result {
                Ok(pid) => Event::Started { unit, pid },
                Err(e @ crate::backend::BackendError::Refused { .. }) => Event::StartRefused {
                    unit,
                    error: e.to_string(),
                },
                Err(e) => Event::StartFailed {
                    unit,
                    error: e.to_string(),
                },
            };
            self.queue.push_back(Input::Unit(event));
        }
    }

    pub(super) fn execute(&mut self, action: Action) {
        match action {
            Action::Start { unit, spec } => self.execute_starts(vec![(unit, spec)]),
            Action::Signal { unit, signal } => {
                if let Err(e) = self.backend.signal(&unit, signal) {
                    tracing::debug!(unit = %unit, "signal: {e}");
                }
            }
            Action::Kill { unit } => {
                tracing::warn!(unit = %unit, "did not stop in time; killing");
                if let Err(e) = self.backend.kill(&unit) {
                    tracing::debug!(unit = %unit, "kill: {e}");
                }
            }
            Action::Report {
                unit,
                kind,
                message,
            } => {
                // SYSG_PID in the journal, while the unit has a process.
                let pid = self.engine.core().unit(&unit).and_then(|u| u.pid);
                match kind {
                    ReportKind::Failed
                    | ReportKind::DependencyFailed
                    | ReportKind::Unhealthy
                    | ReportKind::Skipped
                    | ReportKind::Warning => {
                        tracing::warn!(unit = %unit, pid, "{message}")
                    }
                    _ => tracing::info!(unit = %unit, pid, "{message}"),
                }
                self.dirty.mark();
            }
            Action::Persist => self.dirty.mark(),
            Action::Probe {
                unit,
                probe,
                check,
                spec,
            } => self.probes.spawn(unit, probe, check, spec),
            Action::Notify(notice) => self.notifier.dispatch(&self.config, &notice),
            Action::Deploy(a) => {
                let saves_slot = matches!(a, crate::core::DeployAction::SaveSlot { .. });
                if let Err(e) = self.deploys.execute(a) {
                    tracing::error!("deployment: {e}");
                }
                if saves_slot {
                    // The slot file and the instance of record change together: the state
                    // file follows at the end of this turn.
                    self.dirty.mark();
                }
            }
            Action::ArmTimer {
                unit,
                spec,
                calendar,
            } => {
                if let Err(e) = self.backend.arm_timer(&spec, &calendar) {
                    self.queue.push_back(Input::Unit(Event::TimerFailed {
                        unit,
                        error: e.to_string(),
                    }));
                }
            }
            Action::DisarmTimer { unit } => {
                if let Err(e) = self.backend.disarm_timer(&unit) {
                    tracing::warn!(unit = %unit, "removing the timer: {e}");
                }
            }
            Action::Trigger { unit } => {
                if let Err(e) = self.backend.trigger(&unit) {
                    self.queue.push_back(Input::Unit(Event::StartFailed {
                        unit,
                        error: e.to_string(),
                    }));
                }
            }
            Action::Reply { client, answer } => {
                let resp = self.render(answer);
                self.reply(client, resp);
            }
            Action::Child(a) => self.execute_child(a),
            Action::RecordExit {
                unit,
                pid,
                status,
                ran,
            } => self.obs.record_exit(&unit, pid, status, ran),
        }
    }

    /// Answer client `client` (the readiness pipe, or a parked request).
    pub(super) fn reply(&mut self, client: ClientId, resp: Response) {
        if client == READY {
            setup::report_ready(&mut self.ready, resp);
        } else if let Some(tx) = self.clients.remove(&client) {
            let _ = tx.send(resp);
        }
    }
}

/// The core's event for a backend event (the core routes it by its key).
pub(super) fn event_of(ev: BackendEvent) -> Event {
    match ev {
        BackendEvent::Exited { unit, pid, status } => Event::Exited { unit, pid, status },
        BackendEvent::ExecFailed { unit, pid, error } => Event::ExecFailed { unit, pid, error },
        BackendEvent::MainExited {
            unit,
            pid,
            stopping,
            stop_signal,
            stop_timeout,
        } => Event::MainExited(crate::core::MainExit {
            unit,
            pid,
            stopping,
            stop_signal,
            stop_timeout,
        }),
        BackendEvent::Started { unit, pid } => Event::Started { unit, pid },
        BackendEvent::StoppedOutside { unit, pid, status } => {
            tracing::info!(unit = %unit, pid, "stopped outside sysg (systemctl stop)");
            Event::StoppedOutside { unit, pid, status }
        }
        BackendEvent::StartedOutside { unit, pid } => {
            tracing::info!(unit = %unit, pid, "started outside sysg (systemctl start)");
            Event::StartedOutside { unit, pid }
        }
        BackendEvent::RestartedOutside { unit, old, pid } => {
            tracing::info!(unit = %unit, pid, old, "restarted outside sysg (systemctl restart)");
            Event::RestartedOutside { unit, old, pid }
        }
        BackendEvent::Elapsed { unit } => Event::Elapsed { unit },
        BackendEvent::Notify { unit, pid, message } => Event::Notify { unit, pid, message },
    }
}
