//! Draining what is left of a unit after its main process ended (systemd's
//! `KillMode=control-group` semantics, for every backend key: services, deployment instances,
//! cron runs, spawned children, ad-hoc units).
//!
//! A backend reports the end of a main process in two steps: `Event::MainExited` when the main
//! process ended while other processes of the unit live on, then `Event::Exited` once the unit
//! is empty (a backend whose unit is already empty sends `Exited` alone). In between the core:
//! - sends the unit's stop signal to every remaining process, unless a stop was already under
//!   way (the backend says so: those processes got the stop signal already);
//! - kills the unit once `stop_timeout` has passed since the main exit, if it is still not
//!   empty. A stop under way keeps its own, earlier, kill deadline (the main process ending
//!   early never shortens it); this one only bounds a drain nothing else bounds.
//!
//! The subsystem that owns the key (unit state machine, deployment, cron, spawn tree) keeps
//! treating the process as alive until `Exited`, so nothing restarts or replaces it before the
//! unit is empty. A service being drained is shown as `stopping`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::unit::report;
use super::{Action, Core, ReportKind};

/// One backend key being drained.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Drain {
    /// The main process that ended.
    pid: u32,
    /// When the rest gets SIGKILL (`None` once sent).
    kill_at: Option<Instant>,
}

/// The keys being drained, by backend key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Drains(HashMap<String, Drain>);

impl Drains {
    /// The earliest kill deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.0.values().filter_map(|d| d.kill_at).min()
    }

    /// Nothing is being drained.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key`'s main process ended and the rest of it is being waited for.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// What a backend said when a main process ended with processes of its unit left.
#[derive(Debug, Clone, PartialEq)]
pub struct MainExit {
    /// Backend key.
    pub unit: String,
    /// The main process that ended.
    pub pid: u32,
    /// The remaining processes already got the stop signal (a stop was under way).
    pub stopping: bool,
    /// The unit's stop signal and timeout, from the spec the backend ran.
    pub stop_signal: i32,
    pub stop_timeout: Duration,
}

impl Core {
    /// A main process ended, others of its unit remain: signal them unless a stop is under
    /// way, and arm the kill deadline.
    pub(crate) fn on_main_exited(&mut self, now: Instant, exit: MainExit, out: &mut Vec<Action>) {
        if !exit.stopping {
            out.push(Action::Signal {
                unit: exit.unit.clone(),
                signal: exit.stop_signal,
            });
        }
        // A service whose main process is gone is not probed any more (its verdict would be
        // about leftovers); its exit is handled once the unit is empty.
        if let Some(u) = self
            .units
            .iter_mut()
            .find(|u| u.instance == exit.unit && u.pid == Some(exit.pid))
        {
            u.probe.end();
        }
        report(
            out,
            &exit.unit,
            ReportKind::Stopped,
            format!(
                "main process {} exited; stopping the rest of the unit (up to {:?})",
                exit.pid, exit.stop_timeout
            ),
        );
        self.drains.0.insert(
            exit.unit,
            Drain {
                pid: exit.pid,
                kill_at: now.checked_add(exit.stop_timeout),
            },
        );
    }

    /// `key`'s unit is empty (its `Exited` or `ExecFailed` for `pid` arrived). The runtime
    /// calls it for keys whose end does not go through `handle` (spawned children).
    pub fn drain_ended(&mut self, key: &str, pid: u32) {
        if self.drains.0.get(key).is_some_and(|d| d.pid == pid) {
            self.drains.0.remove(key);
        }
    }

    /// Kill what is still left of drains whose timeout passed.
    pub(crate) fn drain_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut due: Vec<&String> = Vec::new();
        for (key, d) in &mut self.drains.0 {
            if d.kill_at.is_some_and(|t| t <= now) {
                d.kill_at = None;
                due.push(key);
            }
        }
        due.sort();
        for key in due {
            out.push(Action::Kill { unit: key.clone() });
            report(
                out,
                key,
                ReportKind::Stopped,
                "stop timeout reached, killing".to_string(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::MainExit;
    use crate::core::test_support::{spec, unit_plan};
    use crate::core::{Action, Core, Event, Request, StateKind};
    use crate::spec::ExitStatus;

    fn signals(acts: &[Action]) -> Vec<(String, i32)> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Signal { unit, signal } => Some((unit.clone(), *signal)),
                _ => None,
            })
            .collect()
    }

    fn kills(acts: &[Action]) -> Vec<String> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Kill { unit } => Some(unit.clone()),
                _ => None,
            })
            .collect()
    }

    fn starts(acts: &[Action]) -> usize {
        acts.iter()
            .filter(|a| matches!(a, Action::Start { .. }))
            .count()
    }

    fn main_exit(unit: &str, pid: u32, stopping: bool) -> Event {
        Event::MainExited(MainExit {
            unit: unit.into(),
            pid,
            stopping,
            stop_signal: 15,
            stop_timeout: Duration::from_secs(10),
        })
    }

    /// A core running `web` (pid 10) under `restart: always`.
    fn running(t0: Instant) -> Core {
        let mut plan = unit_plan(spec("web"));
        plan.restart = crate::config::schema::RestartPolicy::Always;
        let mut core = Core::new(vec![plan]);
        core.handle(t0, Event::Request(Request::Start(None)));
        core.handle(
            t0,
            Event::Started {
                unit: "web".into(),
                pid: 10,
            },
        );
        assert_eq!(core.unit("web").unwrap().state, StateKind::Running);
        core
    }

    #[test]
    fn leftovers_of_a_main_exit_get_the_stop_signal_then_the_kill_after_the_timeout() {
        let t0 = Instant::now();
        let mut core = running(t0);
        let t1 = t0 + Duration::from_secs(1);
        let acts = core.handle(t1, main_exit("web", 10, false));
        assert_eq!(signals(&acts), [("web".to_string(), 15)]);
        assert!(kills(&acts).is_empty() && starts(&acts) == 0, "{acts:?}");
        // Shown as stopping while the rest of the unit winds down; no restart yet.
        assert_eq!(core.unit("web").unwrap().state, StateKind::Stopping);
        assert_eq!(core.next_deadline(), Some(t1 + Duration::from_secs(10)));
        // Not before the timeout.
        let acts = core.handle(t1 + Duration::from_millis(9_999), Event::Tick);
        assert!(kills(&acts).is_empty(), "{acts:?}");
        let acts = core.handle(t1 + Duration::from_secs(10), Event::Tick);
        assert_eq!(kills(&acts), ["web"]);
        // Once: a second tick kills nothing more.
        let acts = core.handle(t1 + Duration::from_secs(11), Event::Tick);
        assert!(kills(&acts).is_empty(), "{acts:?}");
        // The unit is empty: only now the exit goes through the restart policy.
        let acts = core.handle(
            t1 + Duration::from_secs(11),
            Event::Exited {
                unit: "web".into(),
                pid: 10,
                status: ExitStatus::Code(1),
            },
        );
        assert_ne!(core.unit("web").unwrap().state, StateKind::Stopping);
        assert_eq!(
            core.unit("web").unwrap().state,
            StateKind::Backoff,
            "{acts:?}"
        );
        assert!(core.drains.0.is_empty());
    }

    #[test]
    fn an_empty_unit_before_the_timeout_restarts_without_a_kill() {
        let t0 = Instant::now();
        let mut core = running(t0);
        core.handle(t0, main_exit("web", 10, false));
        let acts = core.handle(
            t0 + Duration::from_millis(500),
            Event::Exited {
                unit: "web".into(),
                pid: 10,
                status: ExitStatus::Code(0),
            },
        );
        assert!(kills(&acts).is_empty());
        let acts = core.handle(t0 + Duration::from_secs(60), Event::Tick);
        assert!(
            kills(&acts).is_empty(),
            "no kill deadline is left: {acts:?}"
        );
    }

    #[test]
    fn a_stop_under_way_is_not_signalled_twice_and_keeps_its_earlier_kill() {
        let t0 = Instant::now();
        let mut core = running(t0);
        let acts = core.handle(t0, Event::Request(Request::Stop(None)));
        assert_eq!(signals(&acts), [("web".to_string(), 15)]);
        // The main process (a shell) ends at once; its program keeps handling the signal.
        let t1 = t0 + Duration::from_secs(2);
        let acts = core.handle(t1, main_exit("web", 10, true));
        assert!(signals(&acts).is_empty(), "{acts:?}");
        assert_eq!(core.unit("web").unwrap().state, StateKind::Stopping);
        // The stop's own deadline (t0 + 10 s) comes first: the main exit did not shorten it.
        assert_eq!(core.next_deadline(), Some(t0 + Duration::from_secs(10)));
        let acts = core.handle(t0 + Duration::from_secs(9), Event::Tick);
        assert!(kills(&acts).is_empty(), "{acts:?}");
        let acts = core.handle(t0 + Duration::from_secs(10), Event::Tick);
        assert_eq!(kills(&acts), ["web"]);
        core.handle(
            t0 + Duration::from_secs(10),
            Event::Exited {
                unit: "web".into(),
                pid: 10,
                status: ExitStatus::Signal(15),
            },
        );
        assert_eq!(core.unit("web").unwrap().state, StateKind::Stopped);
    }

    #[test]
    fn any_backend_key_is_drained() {
        // A deployment candidate, a cron run or a spawned child: the core knows the key only
        // by what the backend says; it still signals and bounds the drain.
        let t0 = Instant::now();
        let mut core = Core::new(Vec::new());
        let acts = core.handle(t0, main_exit("web~3", 7, false));
        assert_eq!(signals(&acts), [("web~3".to_string(), 15)]);
        let acts = core.handle(t0 + Duration::from_secs(10), Event::Tick);
        assert_eq!(kills(&acts), ["web~3"]);
        // A stale exit (another pid) does not end the drain.
        core.drain_ended("web~3", 8);
        assert!(core.drains.contains("web~3"));
        core.handle(
            t0 + Duration::from_secs(10),
            Event::Exited {
                unit: "web~3".into(),
                pid: 7,
                status: ExitStatus::Signal(9),
            },
        );
        assert!(!core.drains.contains("web~3"));
    }
}
